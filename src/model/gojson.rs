//! Go's `encoding/json` writes `&`, `<`, `>`, U+2028 and U+2029 inside
//! strings as `\u0026`, `\u003c`, `\u003e`, `\u2028`, `\u2029`. Bodies that
//! Prometheus or Alertmanager send must look the same from argus.

/// Rewrites JSON text (as serde_json writes it) with Go's escaping. The
/// characters only occur inside strings in valid JSON, so a plain pass
/// over the text is enough.
pub fn go_json_escape(json: Vec<u8>) -> Vec<u8> {
    let needs = json
        .windows(3)
        .any(|w| w == "\u{2028}".as_bytes() || w == "\u{2029}".as_bytes())
        || json.iter().any(|b| matches!(b, b'&' | b'<' | b'>'));
    if !needs {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        match b {
            b'&' => out.extend_from_slice(b"\\u0026"),
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_go_does() {
        let v = raw("{\"a\":\"x&y<z>\u{2028}\u{2029}é\"}");
        assert_eq!(
            String::from_utf8(go_json_escape(v)).unwrap(),
            "{\"a\":\"x\\u0026y\\u003cz\\u003e\\u2028\\u2029é\"}"
        );
        assert_eq!(go_json_escape(b"[1]".to_vec()), b"[1]");
    }

    fn raw(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
}
