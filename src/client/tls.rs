//! TLS through rustls with the ring provider, configured the way paho's `tls_set` /
//! `tls_insecure_set` configure an `ssl.SSLContext`.
//!
//! Known difference: webpki matches the host name against subjectAltName only (RFC 6125
//! §6.4.4 leaves the CN fallback to legacy clients), while OpenSSL, hence paho, falls back
//! to the subject CN when a certificate has no subjectAltName. A CN-only server
//! certificate (e.g. the ones paho-mqtt's tests/ssl/gen.sh makes) therefore fails with
//! `NotValidForName` unless `check_hostname` is off. Chains through an intermediate CA
//! in the CA file verify fine.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
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
    pub keyfile_password: Option<String>,
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
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

/// Verifies the chain but not the name: `check_hostname=False` with verification on.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
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
    } else if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(ConnectError::NotImplemented(
            "legacy OpenSSL-encrypted PEM keys are not supported: convert the key to \
             encrypted PKCS#8 (`openssl pkcs8 -topk8 -in key.pem -out key8.pem`)"
                .into(),
        ));
    } else {
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| ConnectError::Tls(format!("cannot read the private key: {e}")))?
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

/// Decrypts an encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt with AES-CBC, what
/// `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write).
fn decrypt_pkcs8(
    der: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, ConnectError> {
    let password = password.ok_or_else(|| {
        ConnectError::Tls("the private key is encrypted and no keyfile_password was given".into())
    })?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| ConnectError::Tls(format!("cannot read the encrypted private key: {e}")))?;
    let plain = info.decrypt(password).map_err(|_| {
        ConnectError::Tls("cannot decrypt the private key: wrong keyfile_password?".into())
    })?;
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
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&version_list(opts)?)
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    let builder = if !opts.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let roots = Arc::new(roots(opts)?);
        if opts.check_hostname {
            builder.with_root_certificates(roots)
        } else {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| ConnectError::Tls(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
        }
    };
    let mut config = match client_auth(opts)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| ConnectError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Ok(config)
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
                    ConnectError::TlsVerify(format!("{c:?}"))
                }
                Some(other) => ConnectError::Tls(other.to_string()),
                None => ConnectError::Io(e),
            }
        })
}
