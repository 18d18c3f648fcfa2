//! Resume tokens: HS256 JWTs naming a session and the one generation of it they may resume.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The session id.
    pub(crate) sid: String,
    /// The session generation the token resumes; each resume or refresh moves to the next, so a token
    /// works once.
    pub(crate) gen: u64,
    /// Expiry, seconds since the Unix epoch.
    pub(crate) exp: u64,
}

impl Claims {
    /// Whether the token is past its expiry. Refused only for a session that has a socket (a takeover): a
    /// session waiting for its client lives `ttl` from the loss of its socket, and a token of it stays good
    /// as long, however long before the loss it was issued.
    pub(crate) fn expired(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.exp < now.as_secs()
    }
}

/// Why a token was refused; the text is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Bad signature, wrong algorithm, or not a JWT.
    #[error("invalid token")]
    Invalid,
}

/// Signs and checks tokens with one secret.
pub(crate) struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("Tokens")
    }
}

impl Tokens {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        // Whether an expired token is refused depends on its session: see `Claims::expired`.
        validation.validate_exp = false;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for generation `gen` of session `sid`, valid for `ttl`.
    pub(crate) fn issue(&self, sid: &str, gen: u64, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            sid: sid.to_owned(),
            gen,
            exp: (now + ttl).as_secs().max(1),
        };
        // HS256 over plain claims cannot fail to encode.
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Checks a token's signature and algorithm (HS256 only); its expiry is the caller's to weigh.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issues_and_verifies() {
        let tokens = Tokens::new(SECRET);
        let token = tokens.issue("s1", 3, Duration::from_secs(60));
        let claims = tokens.verify(&token).expect("valid");
        assert_eq!((claims.sid.as_str(), claims.gen), ("s1", 3));
    }

    #[test]
    fn refuses_other_secrets_tampering_and_none() {
        let tokens = Tokens::new(SECRET);
        let other = Tokens::new(b"another secret of thirty-two byte");
        let token = other.issue("s1", 0, Duration::from_secs(60));
        assert_eq!(tokens.verify(&token), Err(TokenError::Invalid));

        let token = tokens.issue("s1", 0, Duration::from_secs(60));
        let mut parts: Vec<&str> = token.split('.').collect();
        // alg: none, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[0] = none;
        assert_eq!(
            tokens.verify(&format!("{}.{}.", parts[0], parts[1])),
            Err(TokenError::Invalid)
        );
        assert_eq!(tokens.verify("not.a.jwt"), Err(TokenError::Invalid));
        assert_eq!(tokens.verify(""), Err(TokenError::Invalid));
    }

    #[test]
    fn reads_expired_tokens_and_says_they_are() {
        let tokens = Tokens::new(SECRET);
        let claims = Claims {
            sid: "s1".to_owned(),
            gen: 0,
            exp: 1,
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encodes");
        assert!(tokens.verify(&token).expect("well signed").expired());
        let fresh = tokens.issue("s1", 0, Duration::from_secs(60));
        assert!(!tokens.verify(&fresh).expect("well signed").expired());
    }
}
