//! Password files in mosquitto_passwd's format, so files made by `mosquitto_passwd`
//! work unchanged: `user:$7$iterations$salt$hash` (PBKDF2-SHA512, mosquitto >= 2.0) and
//! `user:$6$salt$hash` (one round of SHA-512 over password then salt, mosquitto 1.x);
//! salt and hash in standard base64.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha512};

use super::auth::{constant_time_eq, Secret};

/// Parses a password file into username -> hashed secret.
pub fn parse(text: &str) -> Result<HashMap<String, Secret>, String> {
    let mut out = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected user:hash", n + 1))?;
        if !(hash.starts_with("$6$") || hash.starts_with("$7$")) {
            return Err(format!(
                "line {}: user {user:?} has an unsupported hash (expected $6$ or $7$)",
                n + 1
            ));
        }
        out.insert(user.to_string(), Secret::Hashed(hash.to_string()));
    }
    Ok(out)
}

/// Verifies `password` against one `$6$...` or `$7$...` entry.
pub fn verify(entry: &str, password: &[u8]) -> bool {
    let parts: Vec<&str> = entry.split('$').collect();
    match parts.as_slice() {
        ["", "7", iterations, salt, hash] => {
            let (Ok(iterations), Ok(salt), Ok(hash)) = (
                iterations.parse::<u32>(),
                STANDARD.decode(salt),
                STANDARD.decode(hash),
            ) else {
                return false;
            };
            if iterations == 0 || hash.is_empty() {
                return false;
            }
            let mut out = vec![0u8; hash.len()];
            pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut out);
            constant_time_eq(&out, &hash)
        }
        ["", "6", salt, hash] => {
            let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
                return false;
            };
            let mut h = Sha512::new();
            h.update(password);
            h.update(&salt);
            constant_time_eq(&h.finalize(), &hash)
        }
        _ => false,
    }
}

/// Makes a `$7$` entry (used by tests and by `Broker(users=...)` callers who want hashes).
pub fn hash_pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(out)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_entries_verify() {
        let entry = hash_pbkdf2(b"secret", b"0123456789ab", 101);
        assert!(verify(&entry, b"secret"));
        assert!(!verify(&entry, b"Secret"));
        let users = parse(&format!("alice:{entry}\n# c\n")).unwrap();
        assert_eq!(users.len(), 1);
        assert!(parse("bob:plain").is_err());
    }

    #[test]
    fn sha512_entries_verify() {
        let salt = b"saltsalt";
        let mut h = Sha512::new();
        h.update(b"pw");
        h.update(salt);
        let entry = format!(
            "$6${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(h.finalize())
        );
        assert!(verify(&entry, b"pw"));
        assert!(!verify(&entry, b"px"));
        assert!(!verify("$7$x$y$z", b"pw"));
    }
}
