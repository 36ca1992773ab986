//! OpenSSL cipher names (`SSLContext.set_ciphers` / `get_ciphers`) to rustls suites.
//!
//! rustls (ring) implements nine suites; every other OpenSSL name (CBC, RSA key
//! exchange, DHE, PSK, CCM, ARIA, Camellia, ...) has no rustls counterpart and is
//! ignored. OpenSSL's `set_ciphers` restricts TLS 1.2 and older only; TLS 1.3 suites
//! stay enabled (they are configured by `set_ciphersuites`, which Python does not
//! expose) — mirrored here: TLS 1.3 suites are restricted only when some are named.

use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};

/// OpenSSL's name for each suite rustls has.
const OPENSSL_NAMES: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

fn is_tls13(suite: &SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// The suites of `available` that `names` select, in the order named (the client's
/// preference), TLS 1.3 first; `None` when no suite is left for any of `versions`
/// (OpenSSL: "No cipher can be selected.").
pub fn select(
    available: &[SupportedCipherSuite],
    names: &[String],
    versions: &[&'static SupportedProtocolVersion],
) -> Option<Vec<SupportedCipherSuite>> {
    let mut named: Vec<SupportedCipherSuite> = Vec::new();
    for name in names {
        let Some((_, id)) = OPENSSL_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        else {
            continue;
        };
        if let Some(s) = available.iter().find(|s| s.suite() == *id) {
            if !named.iter().any(|n| n.suite() == *id) {
                named.push(*s);
            }
        }
    }
    let mut chosen: Vec<SupportedCipherSuite> = named.iter().copied().filter(is_tls13).collect();
    if chosen.is_empty() {
        chosen.extend(available.iter().copied().filter(is_tls13));
    }
    chosen.extend(named.iter().copied().filter(|s| !is_tls13(s)));
    chosen.retain(|s| versions.iter().any(|v| v.version == s.version().version));
    (!chosen.is_empty()).then_some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::ALL_CIPHER_SUITES;
    use rustls::version::{TLS12, TLS13};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn ids(suites: &[SupportedCipherSuite]) -> Vec<CipherSuite> {
        suites.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn every_rustls_suite_has_an_openssl_name() {
        for s in ALL_CIPHER_SUITES {
            assert!(
                OPENSSL_NAMES.iter().any(|(_, id)| *id == s.suite()),
                "{s:?}"
            );
        }
    }

    #[test]
    fn tls12_names_keep_every_tls13_suite() {
        let got = select(
            ALL_CIPHER_SUITES,
            &names(&["ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256"]),
            &[&TLS12, &TLS13],
        )
        .unwrap();
        assert_eq!(got.iter().filter(|s| is_tls13(s)).count(), 3);
        assert_eq!(
            ids(&got[3..]),
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
    }

    #[test]
    fn named_tls13_suites_restrict_tls13() {
        let got = select(
            ALL_CIPHER_SUITES,
            &names(&["TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
            &[&TLS12, &TLS13],
        )
        .unwrap();
        assert_eq!(
            ids(&got),
            [
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            ]
        );
    }

    #[test]
    fn only_unsupported_names_with_tls12_only_selects_nothing() {
        let cbc = names(&["AES128-SHA", "DHE-RSA-AES256-SHA"]);
        assert!(select(ALL_CIPHER_SUITES, &cbc, &[&TLS12]).is_none());
        // With TLS 1.3 allowed its suites remain, as with OpenSSL.
        let got = select(ALL_CIPHER_SUITES, &cbc, &[&TLS12, &TLS13]).unwrap();
        assert!(got.iter().all(is_tls13));
    }
}
