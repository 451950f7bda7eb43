//! Standard base64 decoding (RFC 4648 alphabet, padding optional), for
//! the few places argus reads it: HTTP basic auth and SMTP AUTH in tests.

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
}
