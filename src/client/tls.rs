//! TLS through rustls with the ring provider, configured the way paho's `tls_set` /
//! `tls_insecure_set` configure an `ssl.SSLContext`, with CPython's behaviour where
//! rustls differs:
//!
//! - Host names: webpki matches subjectAltName only; like OpenSSL (hence paho) we also
//!   accept the subject CN when the certificate has no dNSName subjectAltName
//!   ([`hostname`]). Chain verification is webpki's.
//! - Cipher suites: OpenSSL cipher names map to the suites rustls has (TLS 1.3 AES-GCM
//!   and ChaCha20; TLS 1.2 ECDHE with AES-GCM or ChaCha20). rustls has no CBC, RSA key
//!   exchange, DHE, PSK or CCM suites, so those names are ignored ([`ciphers`]).
//! - Client keys: unencrypted PEM, encrypted PKCS#8 and OpenSSL's traditional encrypted
//!   PEM ([`legacy_pem`]).

mod ciphers;
mod hostname;
mod legacy_pem;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::transport::{ConnectError, Io};

#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of trusted CA certificates.
    pub ca_certs: Option<PathBuf>,
    /// DER certificates trusted in addition.
    pub ca_data: Vec<Vec<u8>>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    /// The key's password: what `load_cert_chain` takes as str or bytes.
    pub keyfile_password: Option<Vec<u8>>,
    /// Verify the server's certificate chain (paho: `cert_reqs != CERT_NONE`).
    pub verify: bool,
    /// Check the certificate names the host (False after `tls_insecure_set(True)`).
    pub check_hostname: bool,
    /// "1.2" or "1.3".
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub alpn: Vec<String>,
    pub server_hostname: Option<String>,
    /// Trust the system's roots when no CA is given.
    pub use_native_roots: bool,
    /// OpenSSL cipher names (what `SSLContext.get_ciphers()` lists); `None` = rustls's
    /// defaults. Restricts TLS 1.2 suites; TLS 1.3 suites only when some are named, as
    /// OpenSSL's `set_ciphers` leaves TLS 1.3 alone.
    pub ciphers: Option<Vec<String>>,
}

/// Accepts any certificate: paho's `cert_reqs=ssl.CERT_NONE`.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How the server's name is checked once webpki has verified the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameCheck {
    /// `check_hostname=False`: any name.
    Off,
    /// subjectAltName as webpki does, or the subject CN as OpenSSL does when there is no
    /// dNSName subjectAltName.
    OpenSsl,
}

/// webpki's chain verification with OpenSSL's host-name rule (or none).
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    names: NameCheck,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means a good chain.
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.names == NameCheck::Off => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if matches!(server_name, ServerName::DnsName(dns)
                    if hostname::common_name_matches(end_entity, dns.as_ref())) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(ConnectError::Io)
}

fn roots(opts: &TlsOptions) -> Result<RootCertStore, ConnectError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &opts.ca_certs {
        let pem = read_file(path)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ConnectError::Tls(format!("{}: {e}", path.display())))?;
            store
                .add(cert)
                .map_err(|e| ConnectError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    for der in &opts.ca_data {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
    }
    if store.is_empty() && opts.use_native_roots {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // Unparseable system certificates are skipped, as OpenSSL skips them.
            let _ = store.add(cert);
        }
    }
    Ok(store)
}

fn client_auth(
    opts: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ConnectError> {
    let Some(certfile) = &opts.certfile else {
        return Ok(None);
    };
    let cert_pem = read_file(certfile)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConnectError::Tls(format!("{}: {e}", certfile.display())))?;
    // ssl.load_cert_chain: the key may sit in the certificate file.
    let key_pem = match &opts.keyfile {
        Some(k) => read_file(k)?,
        None => cert_pem.clone(),
    };
    let text = String::from_utf8_lossy(&key_pem);
    let key = if let Some(der) = pem_section(&text, "ENCRYPTED PRIVATE KEY") {
        decrypt_pkcs8(&der, opts.keyfile_password.as_deref())?
    } else if legacy_pem::is_legacy_encrypted(&text) {
        legacy_pem::decrypt(&text, opts.keyfile_password.as_deref()).map_err(|e| match e {
            legacy_pem::LegacyKeyError::Unsupported(why) => ConnectError::NotImplemented(why),
            legacy_pem::LegacyKeyError::Malformed(why) => {
                ConnectError::TlsKey(format!("cannot read the private key: {why}"))
            }
            legacy_pem::LegacyKeyError::NoPassword => ConnectError::TlsKey(NO_PASSWORD.into()),
            legacy_pem::LegacyKeyError::BadDecrypt => ConnectError::TlsKey(BAD_DECRYPT.into()),
        })?
    } else {
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| ConnectError::TlsKey(format!("cannot read the private key: {e}")))?
    };
    Ok(Some((certs, key)))
}

/// The DER bytes of the first PEM section labelled `label`.
fn pem_section(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text[start..].find(&end)? + end.len();
    let (found, der) = pkcs8::der::pem::decode_vec(&text.as_bytes()[start..stop]).ok()?;
    (found == label).then_some(der)
}

const NO_PASSWORD: &str = "the private key is encrypted and no keyfile_password was given";
const BAD_DECRYPT: &str = "bad decrypt: cannot decrypt the private key, wrong keyfile_password?";

/// Decrypts an encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt with AES-CBC, what
/// `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write).
fn decrypt_pkcs8(
    der: &[u8],
    password: Option<&[u8]>,
) -> Result<PrivateKeyDer<'static>, ConnectError> {
    let password = password.ok_or_else(|| ConnectError::TlsKey(NO_PASSWORD.into()))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| ConnectError::TlsKey(format!("cannot read the encrypted private key: {e}")))?;
    let plain = info
        .decrypt(password)
        .map_err(|_| ConnectError::TlsKey(BAD_DECRYPT.into()))?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

fn version_list(
    opts: &TlsOptions,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, ConnectError> {
    let rank = |v: &Option<String>, default: u8| -> Result<u8, ConnectError> {
        match v.as_deref() {
            None => Ok(default),
            Some("1.2") => Ok(2),
            Some("1.3") => Ok(3),
            Some(other) => Err(ConnectError::NotImplemented(format!(
                "TLS version {other} is not supported by rustls (only 1.2 and 1.3)"
            ))),
        }
    };
    let lo = rank(&opts.min_version, 2)?;
    let hi = rank(&opts.max_version, 3)?;
    let mut v = Vec::new();
    if lo <= 2 && hi >= 2 {
        v.push(&rustls::version::TLS12);
    }
    if lo <= 3 && hi >= 3 {
        v.push(&rustls::version::TLS13);
    }
    if v.is_empty() {
        return Err(ConnectError::InvalidArgument(
            "minimum TLS version above the maximum".into(),
        ));
    }
    Ok(v)
}

pub fn client_config(opts: &TlsOptions) -> Result<ClientConfig, ConnectError> {
    let versions = version_list(opts)?;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &opts.ciphers {
        provider.cipher_suites = ciphers::select(&provider.cipher_suites, names, &versions)
            .ok_or_else(|| ConnectError::TlsSetup("No cipher can be selected.".into()))?;
    }
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    let builder = if !opts.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let roots = Arc::new(roots(opts)?);
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
        let names = if opts.check_hostname {
            NameCheck::OpenSsl
        } else {
            NameCheck::Off
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier { inner, names }))
    };
    let mut config = match client_auth(opts)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| ConnectError::TlsKey(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Ok(config)
}

/// OpenSSL's verify result (code and text, as `SSLCertVerificationError.verify_code` /
/// `verify_message` carry them) for a rustls certificate error.
fn verify_failure(error: &CertificateError, name: &str) -> (i64, String) {
    match error {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            if name.parse::<std::net::IpAddr>().is_ok() {
                (
                    64,
                    format!("IP address mismatch, certificate is not valid for '{name}'."),
                )
            } else {
                (
                    62,
                    format!("Hostname mismatch, certificate is not valid for '{name}'."),
                )
            }
        }
        CertificateError::UnknownIssuer => (20, "unable to get local issuer certificate".into()),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            (10, "certificate has expired".into())
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            (9, "certificate is not yet valid".into())
        }
        CertificateError::BadSignature => (7, "certificate signature failure".into()),
        CertificateError::Revoked => (23, "certificate revoked".into()),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            (26, "unsupported certificate purpose".into())
        }
        other => (1, format!("{other:?}")),
    }
}

/// OpenSSL's text for a received alert (its reason code is the text upper-cased with
/// underscores), so messages read as CPython's: "[SSL: SSLV3_ALERT_BAD_CERTIFICATE]
/// sslv3 alert bad certificate".
fn alert_text(alert: AlertDescription) -> Option<&'static str> {
    use AlertDescription as A;
    Some(match alert {
        A::UnexpectedMessage => "sslv3 alert unexpected message",
        A::BadRecordMac => "sslv3 alert bad record mac",
        A::DecryptionFailed => "tlsv1 alert decryption failed",
        A::RecordOverflow => "tlsv1 alert record overflow",
        A::DecompressionFailure => "sslv3 alert decompression failure",
        A::HandshakeFailure => "sslv3 alert handshake failure",
        A::NoCertificate => "sslv3 alert no certificate",
        A::BadCertificate => "sslv3 alert bad certificate",
        A::UnsupportedCertificate => "sslv3 alert unsupported certificate",
        A::CertificateRevoked => "sslv3 alert certificate revoked",
        A::CertificateExpired => "sslv3 alert certificate expired",
        A::CertificateUnknown => "sslv3 alert certificate unknown",
        A::IllegalParameter => "sslv3 alert illegal parameter",
        A::UnknownCA => "tlsv1 alert unknown ca",
        A::AccessDenied => "tlsv1 alert access denied",
        A::DecodeError => "tlsv1 alert decode error",
        A::DecryptError => "tlsv1 alert decrypt error",
        A::ProtocolVersion => "tlsv1 alert protocol version",
        A::InsufficientSecurity => "tlsv1 alert insufficient security",
        A::InternalError => "tlsv1 alert internal error",
        A::InappropriateFallback => "tlsv1 alert inappropriate fallback",
        A::UserCanceled => "tlsv1 alert user cancelled",
        A::NoRenegotiation => "tlsv1 alert no renegotiation",
        A::MissingExtension => "tlsv13 alert missing extension",
        A::UnsupportedExtension => "tlsv1 unsupported extension",
        A::UnrecognisedName => "tlsv1 unrecognized name",
        A::CertificateRequired => "tlsv13 alert certificate required",
        A::NoApplicationProtocol => "tlsv1 alert no application protocol",
        _ => return None,
    })
}

pub async fn handshake(
    io: Box<dyn Io>,
    opts: &TlsOptions,
    host: &str,
) -> Result<TlsStream<Box<dyn Io>>, ConnectError> {
    let config = client_config(opts)?;
    let name = opts.server_hostname.as_deref().unwrap_or(host).to_string();
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| ConnectError::InvalidArgument(format!("invalid server name {name:?}")))?;
    TlsConnector::from(Arc::new(config))
        .connect(server_name, io)
        .await
        .map_err(|e| {
            let tls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned();
            match tls_error {
                Some(rustls::Error::InvalidCertificate(c)) => {
                    let (code, message) = verify_failure(&c, &name);
                    ConnectError::TlsVerify { code, message }
                }
                Some(rustls::Error::AlertReceived(alert)) => match alert_text(alert) {
                    Some(message) => ConnectError::TlsProtocol {
                        eof: false,
                        message: message.to_string(),
                    },
                    None => ConnectError::Tls(format!("received fatal alert: {alert:?}")),
                },
                Some(other) => ConnectError::Tls(other.to_string()),
                // The server hung up inside the handshake: CPython's SSLEOFError.
                None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    ConnectError::TlsProtocol {
                        eof: true,
                        message: "EOF occurred in violation of protocol".into(),
                    }
                }
                None => ConnectError::Io(e),
            }
        })
}
