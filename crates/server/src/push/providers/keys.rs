//! Signing keys and compact JWTs (RFC 7515/7519) for VAPID and APNs (ES256) and FCM's
//! OAuth exchange (RS256), on `ring`; and where the VAPID key comes from.

use crate::config::Config;
use crate::store::Nodes;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde::Serialize;

/// A key that signs JWTs.
pub enum JwtKey {
    /// P-256, for ES256.
    Es256(EcdsaKeyPair),
    /// RSA, for RS256.
    Rs256(RsaKeyPair),
}

impl JwtKey {
    /// A P-256 key from PKCS#8 PEM (a `.p8` file, or the VAPID key).
    pub fn es256_from_pem(pem: &str) -> Result<Self, String> {
        let der = pem_to_der(pem)?;
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map(Self::Es256)
        .map_err(|e| format!("not a PKCS#8 P-256 private key: {e}"))
    }

    /// An RSA key from PKCS#8 PEM (a service account's `private_key`).
    pub fn rs256_from_pem(pem: &str) -> Result<Self, String> {
        let der = pem_to_der(pem)?;
        RsaKeyPair::from_pkcs8(&der)
            .map(Self::Rs256)
            .map_err(|e| format!("not a PKCS#8 RSA private key: {e}"))
    }

    /// The public key as a 65-byte uncompressed point (ES256 keys only).
    pub fn public_point(&self) -> Option<&[u8]> {
        match self {
            Self::Es256(key) => Some(key.public_key().as_ref()),
            Self::Rs256(_) => None,
        }
    }

    /// `header.claims.signature`, with `kid` in the header when given.
    pub fn sign<C: Serialize>(&self, kid: Option<&str>, claims: &C) -> Result<String, String> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            kid: Option<&'a str>,
        }
        let alg = match self {
            Self::Es256(_) => "ES256",
            Self::Rs256(_) => "RS256",
        };
        let header = serde_json::to_vec(&Header {
            alg,
            typ: "JWT",
            kid,
        })
        .map_err(|e| e.to_string())?;
        let claims = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let rng = SystemRandom::new();
        let signature = match self {
            Self::Es256(key) => key
                .sign(&rng, input.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec(),
            Self::Rs256(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut out,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                out
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A new P-256 key pair as PKCS#8 PEM.
pub fn generate_p256_pem() -> Result<String, String> {
    let doc = EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &SystemRandom::new(),
    )
    .map_err(|_| "could not generate a P-256 key".to_owned())?;
    let body = STANDARD.encode(doc.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    Ok(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    ))
}

/// The DER inside a PEM block (its base64 between the BEGIN and END lines).
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    if !pem.contains("-----BEGIN") {
        return Err("not PEM: expected a -----BEGIN PRIVATE KEY----- block".into());
    }
    STANDARD
        .decode(body)
        .map_err(|e| format!("bad base64 in the PEM block: {e}"))
}

/// The VAPID key's PEM: from the config, else the one the store keeps for every node (a
/// browser subscribed through one node must accept pushes signed by any), made by the first
/// node to start. A `data_dir/vapid.pem` from before the key moved into the store is adopted,
/// so browsers already subscribed with it keep working.
pub async fn vapid_pem(config: &Config, store: &dyn Nodes) -> Result<String, String> {
    if !config.push_vapid_private_key.is_empty() {
        return Ok(config.push_vapid_private_key.clone());
    }
    let path = config.data_dir.join("vapid.pem");
    let candidate = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate_p256_pem()?,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    store
        .shared_secret(VAPID_SECRET, &candidate)
        .await
        .map_err(|e| format!("cannot read the shared VAPID key from the store: {e}"))
}

/// The name of the VAPID key among the store's shared secrets.
const VAPID_SECRET: &str = "vapid_private_key";
