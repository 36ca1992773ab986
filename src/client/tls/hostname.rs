//! The subject-CN fallback of OpenSSL's host-name check, which CPython's `ssl` uses
//! (`hostname_checks_common_name` is on by default).
//!
//! webpki matches a DNS name against subjectAltName dNSName entries only (RFC 6125
//! §6.4.4 leaves the CN to legacy clients). OpenSSL (`X509_check_host`) matches the
//! subject's commonName entries when the certificate has *no dNSName* subjectAltName
//! entry (other SAN kinds, e.g. iPAddress, do not count), and never for an IP address.
//! We do the same after webpki has verified the chain; webpki stays the judge of
//! everything else.
//!
//! Only the few DER structures on the way to the subject and the SAN are walked, with
//! a small TLV reader: the certificate has already been parsed and its chain verified
//! by webpki by the time this runs.

/// 2.5.4.3 id-at-commonName (RFC 5280 §4.1.2.6, X.520).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17 id-ce-subjectAltName (RFC 5280 §4.2.1.6).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// `[0] EXPLICIT Version` and `[3] EXPLICIT Extensions` of TBSCertificate (RFC 5280 §4.1).
const VERSION_TAG: u8 = 0xa0;
const EXTENSIONS_TAG: u8 = 0xa3;
/// GeneralName `dNSName [2] IA5String` (implicit tag, primitive).
const DNS_NAME_TAG: u8 = 0x82;

/// One DER TLV: (tag, value, rest). Low tag numbers and definite lengths only, which
/// is all a certificate uses (X.690 §10.1).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The values of a constructed value's elements, in order.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(input)?;
        input = rest;
        Some((tag, value))
    })
}

/// What the host-name check needs from a certificate.
#[derive(Debug, Default, PartialEq, Eq)]
struct Names {
    /// Any subjectAltName dNSName entry present.
    san_dns: bool,
    /// The subject's commonName values, as UTF-8 (OpenSSL's ASN1_STRING_to_UTF8).
    common_names: Vec<String>,
}

fn names(cert_der: &[u8]) -> Option<Names> {
    let (SEQUENCE, cert, _) = tlv(cert_der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut fields = elements(tbs).peekable();
    if fields.peek()?.0 == VERSION_TAG {
        fields.next();
    }
    // serialNumber, signature, issuer, validity, then subject.
    let (SEQUENCE, subject) = fields.nth(4)? else {
        return None;
    };
    let mut out = Names::default();
    for (tag, rdn) in elements(subject) {
        if tag != SET {
            return None;
        }
        for (tag, attribute) in elements(rdn) {
            if tag != SEQUENCE {
                return None;
            }
            let mut parts = elements(attribute);
            if parts.next()? == (OID, OID_COMMON_NAME) {
                let (tag, value) = parts.next()?;
                out.common_names.push(directory_string(tag, value)?);
            }
        }
    }
    // subjectPublicKeyInfo, then the optional fields; extensions are [3].
    for (tag, value) in fields.skip(1) {
        if tag != EXTENSIONS_TAG {
            continue;
        }
        let (SEQUENCE, extensions, _) = tlv(value)? else {
            return None;
        };
        for (tag, extension) in elements(extensions) {
            if tag != SEQUENCE {
                return None;
            }
            let mut parts = elements(extension);
            if parts.next()? != (OID, OID_SUBJECT_ALT_NAME) {
                continue;
            }
            // critical BOOLEAN DEFAULT FALSE may sit before extnValue.
            let (_, san) = parts.find(|(tag, _)| *tag == OCTET_STRING)?;
            let (SEQUENCE, general_names, _) = tlv(san)? else {
                return None;
            };
            out.san_dns |= elements(general_names).any(|(tag, _)| tag == DNS_NAME_TAG);
        }
    }
    Some(out)
}

/// A DirectoryString (RFC 5280 §4.1.2.4) as UTF-8.
fn directory_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
        // TeletexString: OpenSSL treats it as Latin-1.
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UCS-2 big endian.
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UCS-4 big endian.
        0x1c => value
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// True when `host` (a DNS name) is accepted through the subject CN: the certificate
/// has no dNSName subjectAltName and one of its CNs matches.
pub fn common_name_matches(cert_der: &[u8], host: &str) -> bool {
    match names(cert_der) {
        Some(n) if !n.san_dns => n
            .common_names
            .iter()
            .any(|cn| matches_pattern(cn.as_bytes(), host.as_bytes())),
        _ => false,
    }
}

/// OpenSSL's comparison of a certificate name with the host, with the flag CPython
/// sets (`X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS`): ASCII case-insensitive equality, or a
/// `*` that is the whole left-most label of a name with at least two more labels,
/// standing for exactly one non-empty label of letters, digits and hyphens.
fn matches_pattern(pattern: &[u8], host: &[u8]) -> bool {
    // A host starting with '.' never matches a wildcard.
    let wildcard = !(host.len() > 1 && host[0] == b'.') && valid_wildcard(pattern);
    if !wildcard {
        return equal_nocase(pattern, host);
    }
    let suffix = &pattern[1..];
    if host.len() <= suffix.len() {
        return false;
    }
    let (label, host_suffix) = host.split_at(host.len() - suffix.len());
    // The star also matches a literal '*' label.
    equal_nocase(suffix, host_suffix)
        && (label == b"*"
            || label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `*.a.b`: a single star as the whole first label, then valid labels (no empty label,
/// none starting or ending with '-'), at least two dots after the star. A pattern
/// beginning with an IDNA label ("xn--") cannot hold a wildcard.
fn valid_wildcard(pattern: &[u8]) -> bool {
    let Some(rest) = pattern.strip_prefix(b"*.") else {
        return false;
    };
    let labels: Vec<&[u8]> = rest.split(|&b| b == b'.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l[0] != b'-'
                && l[l.len() - 1] != b'-'
                && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn equal_nocase(pattern: &[u8], host: &[u8]) -> bool {
    // A NUL in the certificate name never matches (it would hide a suffix).
    pattern.len() == host.len() && !pattern.contains(&0) && pattern.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut out = vec![tag];
        if body.len() < 0x80 {
            out.push(body.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        out.extend(body);
        out
    }

    fn cn(value: &str) -> Vec<u8> {
        let attr = der(
            SEQUENCE,
            &[
                &der(OID, &[OID_COMMON_NAME]),
                &der(0x0c, &[value.as_bytes()]),
            ],
        );
        der(SET, &[&attr])
    }

    /// A certificate skeleton: only the fields the walker looks at are meaningful.
    fn cert(subject_cns: &[&str], san: Option<&[(u8, &[u8])]>) -> Vec<u8> {
        let rdns: Vec<Vec<u8>> = subject_cns.iter().map(|c| cn(c)).collect();
        let rdn_refs: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
        let subject = der(SEQUENCE, &rdn_refs);
        let mut tbs_parts = vec![
            der(VERSION_TAG, &[&der(0x02, &[&[2]])]),
            der(0x02, &[&[1]]),
            der(SEQUENCE, &[]),
            der(SEQUENCE, &[]),
            der(SEQUENCE, &[]),
            subject,
            der(SEQUENCE, &[]),
        ];
        if let Some(entries) = san {
            let names: Vec<Vec<u8>> = entries.iter().map(|(t, v)| der(*t, &[v])).collect();
            let name_refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let general_names = der(SEQUENCE, &name_refs);
            let ext = der(
                SEQUENCE,
                &[
                    &der(OID, &[OID_SUBJECT_ALT_NAME]),
                    &der(0x01, &[&[0xff]]),
                    &der(OCTET_STRING, &[&general_names]),
                ],
            );
            tbs_parts.push(der(EXTENSIONS_TAG, &[&der(SEQUENCE, &[&ext])]));
        }
        let refs: Vec<&[u8]> = tbs_parts.iter().map(Vec::as_slice).collect();
        let tbs = der(SEQUENCE, &refs);
        der(SEQUENCE, &[&tbs, &der(SEQUENCE, &[]), &der(0x03, &[&[0]])])
    }

    #[test]
    fn cn_only_certificate_matches_its_name_case_insensitively() {
        let c = cert(&["LocalHost"], None);
        assert!(common_name_matches(&c, "localhost"));
        assert!(!common_name_matches(&c, "otherhost"));
        assert!(!common_name_matches(&c, "localhost.example"));
    }

    #[test]
    fn every_cn_is_tried() {
        let c = cert(&["first.example", "second.example"], None);
        assert!(common_name_matches(&c, "second.example"));
    }

    #[test]
    fn a_dns_san_disables_the_cn() {
        let c = cert(&["localhost"], Some(&[(DNS_NAME_TAG, b"other.example")]));
        assert!(!common_name_matches(&c, "localhost"));
    }

    #[test]
    fn an_ip_only_san_keeps_the_cn_as_openssl_does() {
        let c = cert(&["localhost"], Some(&[(0x87, &[127, 0, 0, 1])]));
        assert!(common_name_matches(&c, "localhost"));
    }

    #[test]
    fn wildcards_follow_openssl_without_partial_wildcards() {
        assert!(matches_pattern(b"*.example.com", b"a.example.com"));
        assert!(matches_pattern(b"*.EXAMPLE.com", b"A-1.example.COM"));
        assert!(!matches_pattern(b"*.example.com", b"example.com"));
        assert!(!matches_pattern(b"*.example.com", b"a.b.example.com"));
        assert!(!matches_pattern(b"*.example.com", b".example.com"));
        // Fewer than two labels after the star: only a literal match.
        assert!(!matches_pattern(b"*.com", b"example.com"));
        assert!(matches_pattern(b"*.com", b"*.com"));
        // Partial-label wildcards are off (CPython's flag).
        assert!(!matches_pattern(b"a*.example.com", b"ab.example.com"));
        assert!(!matches_pattern(b"*a.example.com", b"ba.example.com"));
        assert!(!matches_pattern(b"localhost\0", b"localhost"));
    }

    #[test]
    fn garbage_never_matches() {
        assert!(!common_name_matches(b"", "localhost"));
        assert!(!common_name_matches(&[0x30, 0x82, 0xff], "localhost"));
    }
}
