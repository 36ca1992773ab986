//! OpenSSL's "traditional" encrypted PEM private keys (RFC 1421 headers):
//!
//! ```text
//! -----BEGIN RSA PRIVATE KEY-----
//! Proc-Type: 4,ENCRYPTED
//! DEK-Info: AES-256-CBC,<IV in hex>
//!
//! <base64 of the CBC-encrypted PKCS#1 / SEC1 key>
//! -----END RSA PRIVATE KEY-----
//! ```
//!
//! What `openssl genrsa -aes256 -traditional`, `openssl rsa -aes256 -traditional`,
//! `openssl ec -aes128` and OpenSSL 1.x's `genrsa -des3` write. The key is derived with
//! OpenSSL's `EVP_BytesToKey(cipher, MD5, salt = first 8 bytes of the IV, count = 1)`;
//! the plaintext is PKCS#7-padded.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use base64::Engine as _;
use md5::{Digest, Md5};
use rustls::pki_types::PrivateKeyDer;

/// Why a legacy key could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum LegacyKeyError {
    /// Not readable as a traditional encrypted PEM key.
    Malformed(String),
    /// A cipher we do not implement.
    Unsupported(String),
    /// No password given for an encrypted key.
    NoPassword,
    /// Padding or structure wrong after decryption: almost surely a wrong password.
    BadDecrypt,
}

/// True when the PEM text holds a traditional encrypted key.
pub fn is_legacy_encrypted(pem: &str) -> bool {
    pem.contains("Proc-Type: 4,ENCRYPTED")
}

/// Decrypts the first traditional encrypted key block of `pem`.
pub fn decrypt(
    pem: &str,
    password: Option<&[u8]>,
) -> Result<PrivateKeyDer<'static>, LegacyKeyError> {
    let malformed = |why: &str| LegacyKeyError::Malformed(why.to_string());
    let start = pem
        .find("Proc-Type: 4,ENCRYPTED")
        .ok_or_else(|| malformed("no Proc-Type header"))?;
    let begin = pem[..start]
        .rfind("-----BEGIN ")
        .ok_or_else(|| malformed("no BEGIN line"))?;
    let label_line = pem[begin..].lines().next().unwrap_or_default();
    let label = label_line
        .trim()
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| malformed("bad BEGIN line"))?;
    let end_marker = format!("-----END {label}-----");
    let end = pem[start..]
        .find(&end_marker)
        .map(|i| start + i)
        .ok_or_else(|| malformed("no END line"))?;

    // Headers (up to the blank line), then the base64 body.
    let mut dek_info = None;
    let mut body = String::new();
    let mut in_headers = true;
    for line in pem[start..end].lines() {
        let line = line.trim();
        if in_headers {
            if line.is_empty() {
                in_headers = false;
            } else if let Some(v) = line.strip_prefix("DEK-Info:") {
                dek_info = Some(v.trim().to_string());
            }
        } else {
            body.push_str(line);
        }
    }
    let dek_info = dek_info.ok_or_else(|| malformed("no DEK-Info header"))?;
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| malformed("bad DEK-Info header"))?;
    let iv = hex(iv_hex.trim()).ok_or_else(|| malformed("bad IV in DEK-Info"))?;
    let mut data = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| malformed("bad base64 body"))?;

    let password = password.ok_or(LegacyKeyError::NoPassword)?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let plain_len = match cipher.as_str() {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(16, password, &iv, &mut data)?,
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(24, password, &iv, &mut data)?,
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(32, password, &iv, &mut data)?,
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(24, password, &iv, &mut data)?,
        "DES-CBC" => cbc_decrypt::<des::Des>(8, password, &iv, &mut data)?,
        other => {
            return Err(LegacyKeyError::Unsupported(format!(
                "private key cipher {other} is not supported (AES-128/192/256-CBC, \
                 DES-EDE3-CBC and DES-CBC are)"
            )))
        }
    };
    data.truncate(plain_len);
    // A wrong key passes the padding check now and then; the plaintext must also be
    // exactly one DER SEQUENCE (RSAPrivateKey, ECPrivateKey).
    if !is_one_sequence(&data) {
        return Err(LegacyKeyError::BadDecrypt);
    }
    match label {
        "RSA PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs1(data.into())),
        "EC PRIVATE KEY" => Ok(PrivateKeyDer::Sec1(data.into())),
        other => Err(LegacyKeyError::Unsupported(format!(
            "{other} keys are not supported by rustls (RSA and EC keys are)"
        ))),
    }
}

/// `EVP_BytesToKey` with MD5 and one round: D_1 = MD5(password || salt),
/// D_i = MD5(D_{i-1} || password || salt), key = D_1 || D_2 || ... cut to length.
fn bytes_to_key(password: &[u8], salt: &[u8], key_len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(key_len + 16);
    let mut previous: Option<[u8; 16]> = None;
    while key.len() < key_len {
        let mut md = Md5::new();
        if let Some(p) = previous {
            md.update(p);
        }
        md.update(password);
        md.update(salt);
        let digest: [u8; 16] = md.finalize().into();
        key.extend_from_slice(&digest);
        previous = Some(digest);
    }
    key.truncate(key_len);
    key
}

fn cbc_decrypt<C>(
    key_len: usize,
    password: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<usize, LegacyKeyError>
where
    C: aes::cipher::BlockDecrypt + aes::cipher::BlockCipher + aes::cipher::KeyInit,
{
    // The salt is the first 8 bytes of the IV (PKCS5_SALT_LEN).
    if iv.len() < 8 {
        return Err(LegacyKeyError::Malformed("IV too short".into()));
    }
    let key = bytes_to_key(password, &iv[..8], key_len);
    let decryptor = cbc::Decryptor::<C>::new_from_slices(&key, iv)
        .map_err(|_| LegacyKeyError::Malformed("IV length does not fit the cipher".into()))?;
    decryptor
        .decrypt_padded_mut::<Pkcs7>(data)
        .map(<[u8]>::len)
        .map_err(|_| LegacyKeyError::BadDecrypt)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The whole input is one DER SEQUENCE TLV (definite length).
fn is_one_sequence(data: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = data else {
        return false;
    };
    let (len, rest) = if *first < 0x80 {
        (usize::from(*first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return false;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    rest.len() == len
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    /// Builds a traditional encrypted PEM block the way OpenSSL writes one.
    fn encrypt_aes128(label: &str, der: &[u8], password: &str, iv: [u8; 16]) -> String {
        let key = bytes_to_key(password.as_bytes(), &iv[..8], 16);
        let mut buf = der.to_vec();
        let len = buf.len();
        buf.resize(len + 16, 0);
        let enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv).unwrap();
        let ct = enc
            .encrypt_padded_mut::<Pkcs7>(&mut buf, len)
            .unwrap()
            .to_vec();
        let iv_hex: String = iv.iter().map(|b| format!("{b:02X}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(ct);
        format!(
            "-----BEGIN {label}-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{iv_hex}\n\n{b64}\n-----END {label}-----\n"
        )
    }

    #[test]
    fn bytes_to_key_matches_openssl() {
        // What `openssl enc -aes-256-cbc -md md5 -S 0102030405060708 -pass pass:secret -P`
        // prints as key= (two MD5 rounds; the first 16 bytes are the AES-128 key).
        let key = bytes_to_key(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        let expected = "C9E5A1BD216DBE1317E230CEF48F38EE7F0E17AD64022144BCCEC4A1AA2879AB";
        assert_eq!(hex(expected).unwrap(), key);
    }

    #[test]
    fn round_trip_and_wrong_password() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x00];
        let pem = encrypt_aes128("RSA PRIVATE KEY", &der, "pw", [7; 16]);
        assert!(is_legacy_encrypted(&pem));
        let key = decrypt(&pem, Some(b"pw")).unwrap();
        assert_eq!(key.secret_der(), &der);
        assert!(matches!(key, PrivateKeyDer::Pkcs1(_)));
        assert_eq!(
            decrypt(&pem, Some(b"nope")).unwrap_err(),
            LegacyKeyError::BadDecrypt
        );
        assert_eq!(decrypt(&pem, None).unwrap_err(), LegacyKeyError::NoPassword);
    }

    #[test]
    fn unknown_cipher_is_reported() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                   DEK-Info: CAMELLIA-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
                   -----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            decrypt(pem, Some(b"x")),
            Err(LegacyKeyError::Unsupported(_))
        ));
    }
}
