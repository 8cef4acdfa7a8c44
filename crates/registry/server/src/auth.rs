//! Authentication and authorization: anonymous, htpasswd basic auth, and the
//! Docker token protocol with tokens this registry issues itself.
//!
//! Tokens are JWTs signed with HMAC-SHA256 (`alg: HS256`) under a secret only
//! the registry knows; it both issues them (at `/token`) and validates them, so
//! no public-key infrastructure is needed. Written by hand over `hmac`/`sha2`
//! because the format is three base64url parts and one MAC: a JWT crate would
//! bring more surface than it removes. Every authenticated user is granted
//! every action it asks for (no per-repository ACLs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::ServeError;

type HmacSha256 = Hmac<Sha256>;

/// One scope: `repository:NAME:pull,push` or `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn repo(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn catalog() -> Access {
        Access {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }
    }

    /// Parses `TYPE:NAME:ACTIONS` (the name may not contain ':').
    pub fn parse(s: &str) -> Option<Access> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Access {
            kind: kind.into(),
            name: name.into(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
        })
    }

    /// The scope string of a challenge.
    pub fn scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    /// Whether `granted` allows everything `self` asks for.
    fn allowed_by(&self, granted: &[Access]) -> bool {
        self.actions.iter().all(|a| {
            granted.iter().any(|g| {
                g.kind == self.kind
                    && g.name == self.name
                    && g.actions.iter().any(|x| x == a || x == "*")
            })
        })
    }
}

/// Users from an htpasswd file (bcrypt entries only).
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256 of passwords already verified, so bcrypt's deliberate slowness
    /// is paid once per user and password, not on every request.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Htpasswd({} users)", self.users.len())
    }
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServeError::Config(format!("read htpasswd file {}: {e}", path.display()))
        })?;
        Htpasswd::parse(&text)
            .map_err(|e| ServeError::Config(format!("htpasswd file {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected USER:HASH", i + 1));
            };
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(format!(
                    "line {} (user {user}): only bcrypt entries are accepted; create them with `htpasswd -B`",
                    i + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no users".into());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let sum: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if let Some(s) = self.lock().get(user) {
            if constant_eq(s, &sum) {
                return true;
            }
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            self.lock().insert(user.to_string(), sum);
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 32]>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The claims of a registry token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
}

/// Issues and validates HS256 tokens.
pub struct Tokens {
    key: Vec<u8>,
    pub service: String,
    /// The realm clients fetch tokens from; None: this registry's `/token`.
    pub realm: Option<String>,
    pub ttl: Duration,
}

const ISSUER: &str = "strato-registry";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    pub fn new(secret: &[u8], service: &str) -> Result<Tokens, ServeError> {
        if secret.len() < 16 {
            return Err(ServeError::Config(
                "--token-secret must be at least 16 bytes (use e.g. `openssl rand -hex 32`)".into(),
            ));
        }
        Ok(Tokens {
            key: secret.to_vec(),
            service: service.into(),
            realm: None,
            ttl: Duration::from_secs(300),
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn issue(&self, sub: &str, access: Vec<Access>) -> String {
        let t = now();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: self.service.clone(),
            exp: t + self.ttl.as_secs(),
            nbf: t.saturating_sub(1),
            iat: t,
            jti: crate::storage::random_id(),
            access,
        };
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signing = format!("{head}.{body}");
        let mut m = self.mac();
        m.update(signing.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        format!("{signing}.{sig}")
    }

    /// The claims of `token` if its signature, issuer, audience and time are right.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let (signing, sig) = token.rsplit_once('.')?;
        let (head, body) = signing.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut m = self.mac();
        m.update(signing.as_bytes());
        m.verify_slice(&sig).ok()?;
        let h: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).ok()?).ok()?;
        if h["alg"] != "HS256" {
            return None;
        }
        let c: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let t = now();
        (c.iss == ISSUER && c.aud == self.service && c.exp > t && c.nbf <= t).then_some(c)
    }
}

/// How the registry authenticates clients.
pub enum Auth {
    /// Everyone may do everything (the default on loopback).
    Anonymous,
    /// `Authorization: Basic` checked against htpasswd.
    Basic(Htpasswd),
    /// `Authorization: Bearer` tokens from `/token`, where users log in with htpasswd.
    Token { users: Htpasswd, tokens: Tokens },
}

/// The outcome of checking a request.
pub enum Verdict {
    /// Allowed, as this user (None when anonymous).
    Allow(Option<String>),
    /// Refused: the `WWW-Authenticate` challenge to send with 401.
    Challenge(String),
}

/// `user:password` from a Basic `Authorization` header.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let v = header?
        .strip_prefix("Basic ")
        .or_else(|| header?.strip_prefix("basic "))?;
    let raw = STANDARD.decode(v.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl Auth {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Auth::Anonymous)
    }

    /// Checks the `Authorization` header against what the request needs.
    /// `realm` is the token endpoint's URL when the config names none.
    pub fn check(&self, header: Option<&str>, need: &[Access], realm: &str) -> Verdict {
        match self {
            Auth::Anonymous => Verdict::Allow(None),
            Auth::Basic(users) => match basic_credentials(header) {
                Some((u, p)) if users.verify(&u, &p) => Verdict::Allow(Some(u)),
                _ => Verdict::Challenge(r#"Basic realm="strato-registry""#.into()),
            },
            Auth::Token { tokens, .. } => {
                let claims = header
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .and_then(|t| tokens.verify(t.trim()));
                if let Some(c) = &claims {
                    if need.iter().all(|a| a.allowed_by(&c.access)) {
                        return Verdict::Allow(Some(c.sub.clone()));
                    }
                }
                let realm = tokens.realm.as_deref().unwrap_or(realm);
                let mut ch = format!(r#"Bearer realm="{realm}",service="{}""#, tokens.service);
                if !need.is_empty() {
                    let scopes: Vec<String> = need.iter().map(Access::scope).collect();
                    ch.push_str(&format!(r#",scope="{}""#, scopes.join(" ")));
                }
                if claims.is_some() {
                    ch.push_str(r#",error="insufficient_scope""#);
                }
                Verdict::Challenge(ch)
            }
        }
    }

    /// Answers the token endpoint: Ok(token) for a logged-in user with the
    /// requested scopes granted, Err(challenge) otherwise.
    pub fn token(
        &self,
        header: Option<&str>,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, String> {
        let Auth::Token { users, tokens } = self else {
            return Err(String::new());
        };
        let challenge = r#"Basic realm="strato-registry token""#.to_string();
        let Some((u, p)) = basic_credentials(header) else {
            return Err(challenge);
        };
        if !users.verify(&u, &p) {
            return Err(challenge);
        }
        if service.is_some_and(|s| s != tokens.service) {
            return Err(challenge);
        }
        let granted = scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(Access::parse)
            .filter(|a| a.kind == "repository" || (a.kind == "registry" && a.name == "catalog"))
            .map(|mut a| {
                a.actions
                    .retain(|x| ["pull", "push", "delete", "*"].contains(&x.as_str()));
                a
            })
            .collect();
        Ok(tokens.issue(&u, granted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Htpasswd {
        let h = bcrypt::hash("secret", 4).unwrap();
        Htpasswd::parse(&format!("# users\nalice:{h}\n")).unwrap()
    }

    #[test]
    fn htpasswd_accepts_bcrypt_only_and_verifies() {
        let u = users();
        assert!(u.verify("alice", "secret"));
        assert!(u.verify("alice", "secret"), "cached path");
        assert!(!u.verify("alice", "wrong"));
        assert!(!u.verify("bob", "secret"));
        assert!(Htpasswd::parse("bob:{SHA}abc")
            .unwrap_err()
            .contains("htpasswd -B"));
        assert!(Htpasswd::parse("").is_err());
    }

    #[test]
    fn tokens_carry_scopes_and_refuse_tampering() {
        let t = Tokens::new(b"0123456789abcdef0123", "svc").unwrap();
        let tok = t.issue("alice", vec![Access::repo("a/b", &["pull"])]);
        let c = t.verify(&tok).unwrap();
        assert_eq!(c.sub, "alice");
        let mut bad = tok.clone();
        bad.pop();
        bad.push(if tok.ends_with('A') { 'B' } else { 'A' });
        assert!(t.verify(&bad).is_none());
        let other = Tokens::new(b"another secret, 16+", "svc").unwrap();
        assert!(other.verify(&tok).is_none());
        let other_aud = Tokens::new(b"0123456789abcdef0123", "other").unwrap();
        assert!(other_aud.verify(&tok).is_none());
        assert!(Tokens::new(b"short", "svc").is_err());
    }

    #[test]
    fn token_auth_checks_scopes_and_challenges() {
        let auth = Auth::Token {
            users: users(),
            tokens: Tokens::new(b"0123456789abcdef0123", "svc").unwrap(),
        };
        let need = [Access::repo("a/b", &["pull", "push"])];
        let Verdict::Challenge(ch) = auth.check(None, &need, "http://h/token") else {
            panic!("no token must be challenged");
        };
        assert_eq!(
            ch,
            r#"Bearer realm="http://h/token",service="svc",scope="repository:a/b:pull,push""#
        );
        let basic = format!("Basic {}", STANDARD.encode("alice:secret"));
        assert!(auth.token(None, Some("svc"), &[]).is_err());
        let pull_only = auth
            .token(Some(&basic), Some("svc"), &["repository:a/b:pull".into()])
            .unwrap();
        let h = format!("Bearer {pull_only}");
        assert!(matches!(
            auth.check(Some(&h), &need[..0], "r"),
            Verdict::Allow(Some(_))
        ));
        assert!(matches!(
            auth.check(Some(&h), &[Access::repo("a/b", &["pull"])], "r"),
            Verdict::Allow(Some(_))
        ));
        let Verdict::Challenge(ch) = auth.check(Some(&h), &need, "r") else {
            panic!("a pull token must not push");
        };
        assert!(ch.contains("insufficient_scope"));
        assert!(matches!(
            auth.check(Some(&h), &[Access::repo("other", &["pull"])], "r"),
            Verdict::Challenge(_)
        ));
        let wrong = format!("Basic {}", STANDARD.encode("alice:nope"));
        assert!(auth.token(Some(&wrong), Some("svc"), &[]).is_err());
    }

    #[test]
    fn scopes_parse() {
        let a = Access::parse("repository:a/b:pull,push").unwrap();
        assert_eq!(a, Access::repo("a/b", &["pull", "push"]));
        assert_eq!(a.scope(), "repository:a/b:pull,push");
        assert!(Access::parse("nonsense").is_none());
    }
}
