//! Standard base64 (RFC 4648 alphabet), for the few places argus reads or
//! writes it: HTTP basic auth, and SMTP AUTH in tests.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `b` with padding.
pub fn base64_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes `s`; `None` on a character outside the alphabet.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.trim_end_matches('=').bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_with_and_without_padding() {
        assert_eq!(super::base64_decode("YWRtaW46cHc=").unwrap(), b"admin:pw");
        assert_eq!(super::base64_decode("YWRtaW46cHc").unwrap(), b"admin:pw");
        assert_eq!(super::base64_decode("AGEAYg==").unwrap(), b"\0a\0b");
        assert!(super::base64_decode("a*b").is_none());
    }

    #[test]
    fn encodes_what_it_decodes() {
        for s in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"admin:pw",
            b"\0a\0b",
            b"\xff\xfe\xfd\xfc",
        ] {
            let e = super::base64_encode(s);
            assert_eq!(e.len() % 4, 0, "{e}");
            assert_eq!(super::base64_decode(&e).unwrap(), s, "{e}");
        }
        assert_eq!(super::base64_encode(b"admin:pw"), "YWRtaW46cHc=");
    }
}
