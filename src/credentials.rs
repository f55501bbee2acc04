//! The API's credentials on disk: the static token file (with `navarch up`'s admin token) and the key that signs
//! service-account tokens.

use std::path::Path;

use anyhow::{Context as _, Result};
use navarch_gateway::auth::authn::{write_private, SigningKey, StaticTokens, MASTERS};
use navarch_gateway::auth::Authentication;

/// The user `navarch up`'s kubeconfig authenticates as.
pub const ADMIN_USER: &str = "navarch-admin";

/// For `navarch up`: the token file at `path`, created with one admin token (group `system:masters`) when it does
/// not exist. Returns the tokens and the admin token (for the kubeconfig).
pub fn up_tokens(path: &Path) -> Result<(StaticTokens, String)> {
    if !path.exists() {
        let token = random_token();
        let line = format!(
            "# token,user,uid,\"groups\" (kube-apiserver's --token-auth-file format); `navarch up` reads it at start\n\
             {token},{ADMIN_USER},{ADMIN_USER},\"{MASTERS}\"\n"
        );
        write_private(path, line.as_bytes())
            .with_context(|| format!("writing the token file {}", path.display()))?;
    }
    let tokens = StaticTokens::read(path)?;
    let admin = admin_token(path)?.with_context(|| {
        format!(
            "the token file {} has no token for {ADMIN_USER}; add one or delete the file to get a new one",
            path.display()
        )
    })?;
    Ok((tokens, admin))
}

/// The token of [`ADMIN_USER`] in the token file.
fn admin_token(path: &Path) -> Result<Option<String>> {
    first_token(path, |user, _| user == ADMIN_USER)
}

/// The first token of the file (in file order) whose user and groups pass `wanted`.
fn first_token(path: &Path, wanted: impl Fn(&str, &str) -> bool) -> Result<Option<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let mut fields = l.splitn(4, ',').map(str::trim);
            let token = fields.next()?;
            let user = fields.next()?;
            let _uid = fields.next();
            let groups = fields.next().unwrap_or_default();
            wanted(user, groups).then(|| token.to_string())
        }))
}

/// For `navarch gateway --kubeconfig`: the token of the first `system:masters` member of the token file, if any.
pub fn masters_token(token_file: Option<&Path>) -> Result<Option<String>> {
    match token_file {
        Some(path) => first_token(path, |_, groups| {
            groups
                .trim_matches('"')
                .split(',')
                .any(|g| g.trim() == MASTERS)
        }),
        None => Ok(None),
    }
}

/// 32 random bytes, URL-safe base64: as hard to guess as the signing key.
fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The gateway's authentication from its flags: tokens from `token_file`, service-account tokens signed with the
/// key in `key_file` (neither is required; with neither, every request is 401).
pub fn authentication(
    token_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Authentication> {
    let tokens = match token_file {
        Some(path) => StaticTokens::read(path)?,
        None => StaticTokens::default(),
    };
    let service_account_key = key_file.map(SigningKey::read).transpose()?;
    if tokens.is_empty() && service_account_key.is_none() {
        tracing::warn!(
            "no --token-auth-file and no --service-account-key-file: every API request will be refused (401)"
        );
    }
    Ok(Authentication {
        tokens,
        service_account_key,
        ..Authentication::default()
    })
}

/// For `navarch up`: the token file and signing key under `data_dir`, created on first start.
pub fn up_authentication(data_dir: &Path) -> Result<(Authentication, String)> {
    let (tokens, admin) = up_tokens(&data_dir.join("tokens.csv"))?;
    let key = SigningKey::read_or_create(&data_dir.join("service-account.key"))?;
    Ok((
        Authentication {
            tokens,
            service_account_key: Some(key),
            ..Authentication::default()
        },
        admin,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_creates_an_admin_token_once_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, admin) = up_authentication(dir.path()).unwrap();
        assert_eq!(auth.tokens.len(), 1);
        let user = auth
            .authenticate(Some(&format!("Bearer {admin}")), 0)
            .unwrap()
            .user();
        assert_eq!(user.name, ADMIN_USER);
        assert!(user.groups.iter().any(|g| g == MASTERS));
        let (again, same) = up_authentication(dir.path()).unwrap();
        assert_eq!(same, admin);
        assert_eq!(again, auth);
        assert_eq!(
            masters_token(Some(&dir.path().join("tokens.csv"))).unwrap(),
            Some(admin.clone())
        );
        std::fs::write(dir.path().join("tokens.csv"), "t,bob,1\n").unwrap();
        assert_eq!(
            masters_token(Some(&dir.path().join("tokens.csv"))).unwrap(),
            None
        );
        let err = up_authentication(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no token for navarch-admin"), "{err}");
    }
}
