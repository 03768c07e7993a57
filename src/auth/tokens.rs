//! JSON Web Tokens exactly as SimpleJWT 5.5 writes and checks them, so tokens of the legacy
//! Django service (same secret) stay valid and legacy clients see the same failures.
//!
//! Header `{"alg":"HS256","typ":"JWT"}`; claims in the order `token_type`, `exp`, `iat`, `jti`,
//! `user_id` (a string; a number from older tokens is accepted). Signatures and algorithms are
//! checked by `jsonwebtoken` (only the configured algorithm, never `none`); the claim checks
//! follow SimpleJWT's order so each failure carries SimpleJWT's message.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    /// SimpleJWT's class name, shown in its error bodies.
    pub fn class_name(self) -> &'static str {
        match self {
            TokenKind::Access => "AccessToken",
            TokenKind::Refresh => "RefreshToken",
        }
    }
}

/// Why a token was refused, with SimpleJWT's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Invalid,
    Expired,
    NoExp,
    NoId,
    NoType,
    WrongType,
    /// A refresh token that was revoked (signed out).
    Revoked,
}

impl TokenProblem {
    pub fn message(self) -> &'static str {
        match self {
            TokenProblem::Invalid => "Token is invalid",
            TokenProblem::Expired => "Token is expired",
            TokenProblem::NoExp => "Token has no 'exp' claim",
            TokenProblem::NoId => "Token has no id",
            TokenProblem::NoType => "Token has no type",
            TokenProblem::WrongType => "Token has wrong type",
            TokenProblem::Revoked => "Token is blacklisted",
        }
    }
}

/// The claims Agora writes, in SimpleJWT's order.
#[derive(Debug, Serialize)]
struct IssuedClaims<'a> {
    token_type: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    user_id: String,
}

/// The claims as read back: every one optional, so each absence gets its own message.
#[derive(Debug, Deserialize)]
struct ReadClaims {
    token_type: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    jti: Option<serde_json::Value>,
    user_id: Option<serde_json::Value>,
}

/// A token that passed every check but the user lookup.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub jti: String,
    /// Seconds since the epoch.
    pub exp: i64,
    /// `None` when the token names no usable user id.
    pub user_id: Option<i64>,
}

/// A freshly signed token and the facts needed to revoke it later.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub exp: i64,
}

#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: i64,
    refresh_ttl: i64,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenService {
    pub fn new(secret: &[u8], access_ttl_secs: i64, refresh_ttl_secs: i64) -> Self {
        // Only HS256; `exp` is checked by hand below (no leeway, as SimpleJWT) so that a missing
        // claim and an expired one get different messages.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl: access_ttl_secs,
            refresh_ttl: refresh_ttl_secs,
        }
    }

    pub fn issue(&self, kind: TokenKind, user_id: i64) -> IssuedToken {
        let iat = chrono::Utc::now().timestamp();
        let exp = iat + if kind == TokenKind::Access { self.access_ttl } else { self.refresh_ttl };
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let jti = hex::encode(jti);
        let claims = IssuedClaims { token_type: kind.as_str(), exp, iat, jti: &jti, user_id: user_id.to_string() };
        let claims = serde_json::to_vec(&claims).expect("claims serialise");
        let message = format!("{}.{}", B64URL.encode(HEADER), B64URL.encode(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::HS256).expect("HS256 signs");
        IssuedToken { token: format!("{message}.{signature}"), jti, exp }
    }

    /// Checks signature, algorithm, expiry, id and type, in SimpleJWT's order.
    pub fn verify(&self, token: &str, expected: TokenKind) -> Result<VerifiedToken, TokenProblem> {
        let data =
            jsonwebtoken::decode::<ReadClaims>(token, &self.decoding, &self.validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => TokenProblem::Expired,
                    _ => TokenProblem::Invalid,
                }
            })?;
        let claims = data.claims;
        let exp = match claims.exp {
            None => return Err(TokenProblem::NoExp),
            Some(value) => value.as_f64().ok_or(TokenProblem::Invalid)?,
        };
        if (exp as i64) <= chrono::Utc::now().timestamp() {
            return Err(TokenProblem::Expired);
        }
        let jti = match claims.jti {
            None => return Err(TokenProblem::NoId),
            Some(serde_json::Value::String(jti)) => jti,
            Some(other) => other.to_string(),
        };
        match claims.token_type {
            None => return Err(TokenProblem::NoType),
            Some(serde_json::Value::String(kind)) if kind == expected.as_str() => {}
            Some(_) => return Err(TokenProblem::WrongType),
        }
        let user_id = match claims.user_id {
            Some(serde_json::Value::String(id)) => id.parse().ok(),
            Some(serde_json::Value::Number(id)) => id.as_i64(),
            _ => None,
        };
        Ok(VerifiedToken { jti, exp: exp as i64, user_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(b"secret", 300, 86_400)
    }

    fn forge(header: &str, claims: serde_json::Value, secret: &[u8]) -> String {
        let message = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims.to_string()));
        let alg = if header.contains("HS512") { Algorithm::HS512 } else { Algorithm::HS256 };
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), alg).unwrap();
        format!("{message}.{sig}")
    }

    #[test]
    fn layout_is_simplejwt() {
        let token = service().issue(TokenKind::Access, 7).token;
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(B64URL.decode(parts[0]).unwrap(), HEADER.as_bytes());
        let claims = String::from_utf8(B64URL.decode(parts[1]).unwrap()).unwrap();
        let re = regex::Regex::new(
            r#"^\{"token_type":"access","exp":(\d+),"iat":(\d+),"jti":"[0-9a-f]{32}","user_id":"7"\}$"#,
        )
        .unwrap();
        let caps = re.captures(&claims).expect(&claims);
        let (exp, iat): (i64, i64) = (caps[1].parse().unwrap(), caps[2].parse().unwrap());
        assert_eq!(exp - iat, 300);
    }

    #[test]
    fn kinds_are_not_interchangeable() {
        let s = service();
        let access = s.issue(TokenKind::Access, 1).token;
        let refresh = s.issue(TokenKind::Refresh, 1).token;
        assert_eq!(s.verify(&access, TokenKind::Access).unwrap().user_id, Some(1));
        assert_eq!(s.verify(&refresh, TokenKind::Refresh).unwrap().user_id, Some(1));
        assert_eq!(s.verify(&access, TokenKind::Refresh).unwrap_err(), TokenProblem::WrongType);
        assert_eq!(s.verify(&refresh, TokenKind::Access).unwrap_err(), TokenProblem::WrongType);
    }

    #[test]
    fn refuses_what_simplejwt_refuses() {
        let s = service();
        let now = chrono::Utc::now().timestamp();
        let h = HEADER;
        let ok = serde_json::json!({"token_type":"access","exp":now+60,"iat":now,"jti":"ab","user_id":1});
        assert_eq!(s.verify(&forge(h, ok.clone(), b"secret"), TokenKind::Access).unwrap().user_id, Some(1));
        assert_eq!(s.verify(&forge(h, ok.clone(), b"other"), TokenKind::Access).unwrap_err(), TokenProblem::Invalid);
        let hs512 = r#"{"alg":"HS512","typ":"JWT"}"#;
        assert_eq!(
            s.verify(&forge(hs512, ok.clone(), b"secret"), TokenKind::Access).unwrap_err(),
            TokenProblem::Invalid
        );
        let none = format!("{}.{}.", B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#), B64URL.encode(ok.to_string()));
        assert_eq!(s.verify(&none, TokenKind::Access).unwrap_err(), TokenProblem::Invalid);
        assert_eq!(s.verify("garbage", TokenKind::Access).unwrap_err(), TokenProblem::Invalid);
        let expired = serde_json::json!({"token_type":"access","exp":now-1,"iat":now-301,"jti":"ab","user_id":"1"});
        assert_eq!(s.verify(&forge(h, expired, b"secret"), TokenKind::Access).unwrap_err(), TokenProblem::Expired);
        let no_exp = serde_json::json!({"token_type":"access","iat":now,"jti":"ab","user_id":"1"});
        assert_eq!(s.verify(&forge(h, no_exp, b"secret"), TokenKind::Access).unwrap_err(), TokenProblem::NoExp);
        let no_jti = serde_json::json!({"token_type":"access","exp":now+60,"iat":now,"user_id":"1"});
        assert_eq!(s.verify(&forge(h, no_jti, b"secret"), TokenKind::Access).unwrap_err(), TokenProblem::NoId);
        let no_type = serde_json::json!({"exp":now+60,"iat":now,"jti":"ab","user_id":"1"});
        assert_eq!(s.verify(&forge(h, no_type, b"secret"), TokenKind::Access).unwrap_err(), TokenProblem::NoType);
        let no_user = serde_json::json!({"token_type":"access","exp":now+60,"iat":now,"jti":"ab"});
        assert_eq!(s.verify(&forge(h, no_user, b"secret"), TokenKind::Access).unwrap().user_id, None);
    }
}
