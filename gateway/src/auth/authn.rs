//! Who a request comes from: bearer tokens from a static token file, and service-account tokens the gateway
//! signs itself (the TokenRequest subresource, `kubectl create token`). A request without a token, or with one no
//! authenticator accepts, is 401 — except the health probes, which answer anyone (see `auth::middleware`).
//!
//! Service-account tokens are JWTs with kube-apiserver's claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`
//! and `kubernetes.io` naming the namespace and the service account's name and uid), signed with HMAC-SHA256 under
//! a key every gateway of the cluster shares (`--service-account-key-file`). kube-apiserver signs with an
//! asymmetric key so that anyone can verify its tokens through OIDC discovery; Navarch's tokens can be checked
//! only by its gateways, which is all the API needs.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::rbac::UserInfo;

/// The issuer (and default audience) of service-account tokens: kube-apiserver's default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub use super::rbac::{AUTHENTICATED_GROUP as AUTHENTICATED, PRIVILEGED_GROUP as MASTERS};
/// Size of a service-account signing key.
pub const KEY_BYTES: usize = 32;

/// A token file or key file that cannot be used. Not retryable: the file must be fixed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A line of the static token file is malformed.
    #[error("token file line {line}: {message}")]
    TokenFile {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The service-account key file does not hold a key.
    #[error("the service-account key file {path} must hold {KEY_BYTES} bytes, base64-encoded")]
    KeyFile {
        /// The file.
        path: String,
    },
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Users by bearer token, read from a file in kube-apiserver's `--token-auth-file` format: one CSV line per token,
/// `token,user,uid[,"group1,group2"]`; `#` lines and blank lines are skipped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StaticTokens(HashMap<String, UserInfo>);

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&str> = self.0.values().map(|u| u.name.as_str()).collect();
        users.sort_unstable();
        f.debug_struct("StaticTokens")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

impl StaticTokens {
    /// Parses a token file's text.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut tokens = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| AuthError::TokenFile {
                line: index + 1,
                message: message.to_string(),
            };
            let fields = csv_fields(line).ok_or_else(|| bad("unbalanced quotes"))?;
            let [token, name, uid, rest @ ..] = fields.as_slice() else {
                return Err(bad("expected token,user,uid[,\"group1,group2\"]"));
            };
            if token.is_empty() || name.is_empty() {
                return Err(bad("the token and the user name must not be empty"));
            }
            let groups: Vec<String> = match rest {
                [] => Vec::new(),
                [groups] => groups
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
                _ => return Err(bad("too many fields: quote the groups (\"g1,g2\")")),
            };
            if tokens.contains_key(token.as_str()) {
                return Err(bad("this token is listed twice"));
            }
            tokens.insert(token.clone(), user(name, uid, groups));
        }
        Ok(Self(tokens))
    }

    /// Reads and parses a token file.
    pub fn read(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            what: "reading the token file",
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Adds one token (for tests and embedders).
    pub fn insert(&mut self, token: &str, name: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.0.insert(token.to_string(), user(name, name, groups));
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fields of one CSV line (double quotes group commas; `""` inside quotes is a quote). None when a quote is
/// left open.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut()?;
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    (!quoted).then(|| fields.into_iter().map(|f| f.trim().to_string()).collect())
}

/// A user with `system:authenticated` added, as every authenticator in kube-apiserver does.
fn user(name: &str, uid: &str, mut groups: Vec<String>) -> UserInfo {
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    UserInfo {
        name: name.to_string(),
        uid: uid.to_string(),
        groups,
    }
}

/// The key that signs and verifies service-account tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey([u8; KEY_BYTES]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Reads a key file (base64 of the key, one line).
    pub fn read(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            what: "reading the service-account key file",
            path: path.display().to_string(),
            source,
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; KEY_BYTES]>::try_from(bytes).ok())
            .map(Self)
            .ok_or_else(|| AuthError::KeyFile {
                path: path.display().to_string(),
            })
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a fresh key when there is none.
    pub fn read_or_create(path: &Path) -> Result<Self, AuthError> {
        if path.exists() {
            return Self::read(path);
        }
        let key = Self::generate();
        let text = format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(key.0)
        );
        write_private(path, text.as_bytes()).map_err(|source| AuthError::Io {
            what: "writing the service-account key file",
            path: path.display().to_string(),
            source,
        })?;
        Ok(key)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// Signs the claims of a service-account token.
    pub fn issue(&self, claims: &ServiceAccountClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Jwt::from(claims)).unwrap_or_default());
        let signed = format!("{header}.{body}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// The claims of a token this key signed, if it is valid at `now` (Unix seconds) for one of `audiences`.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
        audiences: &[String],
    ) -> Result<ServiceAccountClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotAJwt);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(TokenError::NotAJwt)?;
        if header["alg"] != "HS256" {
            return Err(TokenError::BadSignature);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::NotAJwt)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..header_and_body_len(token)]);
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let jwt: Jwt = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::NotAJwt)?;
        if jwt.iss != ISSUER {
            return Err(TokenError::BadSignature);
        }
        if !jwt.aud.iter().any(|a| audiences.contains(a)) {
            return Err(TokenError::WrongAudience);
        }
        // A little leeway for clocks of different gateways, as kube-apiserver's JWT validation allows.
        const LEEWAY: i64 = 60;
        if now >= jwt.exp + LEEWAY || now + LEEWAY < jwt.nbf {
            return Err(TokenError::Expired);
        }
        let k8s = jwt.kubernetes;
        if jwt.sub != service_account_user(&k8s.namespace, &k8s.serviceaccount.name).as_str() {
            return Err(TokenError::NotAJwt);
        }
        Ok(ServiceAccountClaims {
            namespace: k8s.namespace,
            name: k8s.serviceaccount.name,
            uid: k8s.serviceaccount.uid,
            audiences: jwt.aud,
            issued_at: jwt.iat,
            expires_at: jwt.exp,
            id: jwt.jti,
        })
    }
}

/// The length of `header.body` in a JWT (everything before the last dot).
fn header_and_body_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Why a service-account token is refused (each answers 401; the reason is only logged, as kube-apiserver does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT of the expected shape.
    #[error("the token is not a service-account JWT")]
    NotAJwt,
    /// Signed by another key, another algorithm or another issuer.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Not for this API's audiences.
    #[error("the token is for another audience")]
    WrongAudience,
    /// Past its expiry (or not yet valid).
    #[error("the token has expired")]
    Expired,
}

/// What a service-account token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub name: String,
    /// The service account's uid: the token dies with the object it was issued for.
    pub uid: String,
    /// Who the token is for.
    pub audiences: Vec<String>,
    /// When it was issued (Unix seconds).
    pub issued_at: i64,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
    /// Its unique id.
    pub id: String,
}

impl ServiceAccountClaims {
    /// The user the token authenticates as: `system:serviceaccount:NS:NAME` in the groups `system:serviceaccounts`
    /// and `system:serviceaccounts:NS`, as kube-apiserver names them.
    pub fn user(&self) -> UserInfo {
        user(
            &service_account_user(&self.namespace, &self.name),
            &self.uid,
            vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
        )
    }
}

/// `system:serviceaccount:NS:NAME`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The JWT claims as kube-apiserver writes them.
#[derive(Serialize, Deserialize)]
struct Jwt {
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    iss: String,
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
    nbf: i64,
    sub: String,
}

#[derive(Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Reference,
}

#[derive(Serialize, Deserialize)]
struct Reference {
    name: String,
    uid: String,
}

impl From<&ServiceAccountClaims> for Jwt {
    fn from(c: &ServiceAccountClaims) -> Self {
        Jwt {
            aud: c.audiences.clone(),
            exp: c.expires_at,
            iat: c.issued_at,
            iss: ISSUER.to_string(),
            jti: c.id.clone(),
            kubernetes: KubernetesClaims {
                namespace: c.namespace.clone(),
                serviceaccount: Reference {
                    name: c.name.clone(),
                    uid: c.uid.clone(),
                },
            },
            nbf: c.issued_at,
            sub: service_account_user(&c.namespace, &c.name),
        }
    }
}

/// How the gateway authenticates. The default accepts no token at all: every request but the health probes is
/// 401 until tokens are configured (`navarch up` always writes an admin token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// Tokens from the static token file.
    pub tokens: StaticTokens,
    /// The key that signs and verifies service-account tokens; None: TokenRequest is refused and only static
    /// tokens authenticate.
    pub service_account_key: Option<SigningKey>,
    /// Audiences the API accepts (kube-apiserver's `--api-audiences`; default: the issuer).
    pub audiences: Vec<String>,
}

impl Default for Authentication {
    fn default() -> Self {
        Self {
            tokens: StaticTokens::default(),
            service_account_key: None,
            audiences: vec![ISSUER.to_string()],
        }
    }
}

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A user of the static token file.
    User(UserInfo),
    /// A service account, by a token the gateway signed; the caller still checks that the account exists with
    /// the token's uid.
    ServiceAccount(ServiceAccountClaims),
}

impl Identity {
    /// The user the identity stands for.
    pub fn user(&self) -> UserInfo {
        match self {
            Identity::User(u) => u.clone(),
            Identity::ServiceAccount(claims) => claims.user(),
        }
    }
}

/// Why a request did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Anonymous,
    /// A token no authenticator accepts.
    #[error("invalid bearer token: {0}")]
    Invalid(String),
}

impl Authentication {
    /// The same with one more static token (for tests and embedders).
    pub fn with_token(mut self, token: &str, name: &str, groups: &[&str]) -> Self {
        self.tokens.insert(token, name, groups);
        self
    }

    /// Who the `Authorization` header value speaks for, at `now` (Unix seconds).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: i64,
    ) -> Result<Identity, Unauthenticated> {
        let header = authorization.ok_or(Unauthenticated::Anonymous)?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(Unauthenticated::Anonymous),
        };
        if token.is_empty() {
            return Err(Unauthenticated::Anonymous);
        }
        if let Some(user) = self.tokens.0.get(token) {
            return Ok(Identity::User(user.clone()));
        }
        let key = self
            .service_account_key
            .as_ref()
            .ok_or_else(|| Unauthenticated::Invalid("unknown token".into()))?;
        key.verify(token, now, &self.audiences)
            .map(Identity::ServiceAccount)
            .map_err(|e| Unauthenticated::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_parse_like_kube_apiserver() {
        let tokens = StaticTokens::parse(
            "# admin\n\nabc,admin,1,\"system:masters,ops\"\n  def , bob , 2\nghi,carol,3,devs\n",
        )
        .unwrap();
        assert_eq!(tokens.len(), 3);
        let admin = &tokens.0["abc"];
        assert_eq!(admin.name, "admin");
        assert_eq!(admin.uid, "1");
        assert_eq!(admin.groups, ["system:masters", "ops", AUTHENTICATED]);
        assert_eq!(tokens.0["def"].groups, [AUTHENTICATED]);
        assert_eq!(tokens.0["ghi"].groups, ["devs", AUTHENTICATED]);
        for (bad, line) in [
            ("abc,admin", 1),
            ("x,y,z\nabc,admin,1,\"open", 2),
            (",admin,1", 1),
            ("a,b,c\na,d,e", 2),
            ("a,b,c,g1,g2", 1),
        ] {
            match StaticTokens::parse(bad) {
                Err(AuthError::TokenFile { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn debug_never_prints_tokens_or_keys() {
        let mut tokens = StaticTokens::default();
        tokens.insert("s3cr3t-token", "admin", &[MASTERS]);
        let auth = Authentication {
            tokens,
            service_account_key: Some(SigningKey::from_bytes([7; KEY_BYTES])),
            ..Authentication::default()
        };
        let printed = format!("{auth:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("admin"), "{printed}");
        assert!(!printed.contains("[7, 7"), "{printed}");
    }

    fn claims(exp: i64) -> ServiceAccountClaims {
        ServiceAccountClaims {
            namespace: "a".into(),
            name: "robot".into(),
            uid: "u-1".into(),
            audiences: vec![ISSUER.into()],
            issued_at: 1000,
            expires_at: exp,
            id: "j-1".into(),
        }
    }

    #[test]
    fn service_account_tokens_verify_only_with_their_key_in_their_lifetime() {
        let key = SigningKey::from_bytes([1; KEY_BYTES]);
        let token = key.issue(&claims(5000));
        let audiences = vec![ISSUER.to_string()];
        assert_eq!(key.verify(&token, 2000, &audiences), Ok(claims(5000)));
        let other = SigningKey::from_bytes([2; KEY_BYTES]);
        assert_eq!(
            other.verify(&token, 2000, &audiences),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key.verify(&token, 5000 + 61, &audiences),
            Err(TokenError::Expired)
        );
        assert_eq!(
            key.verify(&token, 2000, &["vault".to_string()]),
            Err(TokenError::WrongAudience)
        );
        // A changed body breaks the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Jwt::from(&ServiceAccountClaims {
                name: "admin".into(),
                ..claims(5000)
            }))
            .unwrap(),
        );
        parts[1] = &forged;
        assert_eq!(
            key.verify(&parts.join("."), 2000, &audiences),
            Err(TokenError::BadSignature)
        );
        // "alg": "none" is refused outright.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(key.verify(&none, 2000, &audiences).is_err());
        for garbage in ["", "a.b", "a.b.c.d", "...", "x.y.z", "\u{0}.\u{1}.\u{2}"] {
            assert!(
                key.verify(garbage, 2000, &audiences).is_err(),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn service_account_users_are_named_as_in_kubernetes() {
        let user = claims(5000).user();
        assert_eq!(user.name, "system:serviceaccount:a:robot");
        assert_eq!(user.uid, "u-1");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:a",
                AUTHENTICATED
            ]
        );
    }

    #[test]
    fn authenticate_takes_static_tokens_then_signed_ones() {
        let key = SigningKey::from_bytes([1; KEY_BYTES]);
        let mut tokens = StaticTokens::default();
        tokens.insert("admin-token", "admin", &[MASTERS]);
        let auth = Authentication {
            tokens,
            service_account_key: Some(key.clone()),
            ..Authentication::default()
        };
        let admin = auth.authenticate(Some("Bearer admin-token"), 0).unwrap();
        assert_eq!(admin.user().name, "admin");
        assert!(admin.user().groups.contains(&MASTERS.to_string()));
        let sa = key.issue(&claims(5000));
        assert_eq!(
            auth.authenticate(Some(&format!("bearer {sa}")), 2000),
            Ok(Identity::ServiceAccount(claims(5000)))
        );
        assert_eq!(auth.authenticate(None, 0), Err(Unauthenticated::Anonymous));
        assert_eq!(
            auth.authenticate(Some("Basic YWJjOmRlZg=="), 0),
            Err(Unauthenticated::Anonymous)
        );
        assert!(matches!(
            auth.authenticate(Some("Bearer nope"), 0),
            Err(Unauthenticated::Invalid(_))
        ));
        let without_key = Authentication::default();
        assert!(matches!(
            without_key.authenticate(Some(&format!("Bearer {sa}")), 2000),
            Err(Unauthenticated::Invalid(_))
        ));
    }

    #[test]
    fn key_files_are_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pki/sa.key");
        let key = SigningKey::read_or_create(&path).unwrap();
        assert_eq!(SigningKey::read_or_create(&path).unwrap(), key);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            SigningKey::read(&path),
            Err(AuthError::KeyFile { .. })
        ));
    }
}
