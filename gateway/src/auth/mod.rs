//! Who is asking and may they: authentication and RBAC authorization.
//!
//! # Layout
//! - [`authn`]: bearer tokens (a static token file, service-account JWTs the gateway signs) -> a user, or 401.
//! - [`rbac`]: the pure RBAC decision: request attributes, the policy built from Roles and bindings, and the
//!   default roles kube-apiserver creates.
//! - [`cache`]: the RBAC objects and service accounts kept in memory from one store watch per kind.
//! - `middleware`: the 401 / 403 check in front of every handler.
//! - `reviews`: SelfSubjectReview, (Self)SubjectAccessReview, SelfSubjectRulesReview, TokenReview, TokenRequest.

pub mod authn;
pub mod cache;
pub(crate) mod middleware;
pub mod rbac;
pub(crate) mod reviews;

pub use authn::Authentication;
pub use cache::AuthCache;
