//! The namespace controller: empties a namespace being deleted, then lets it go. [`plan`] decides;
//! [`NamespaceController`] watches namespaces and carries it out.
//!
//! As in Kubernetes, deleting a namespace whose `spec.finalizers` holds `kubernetes` only marks it Terminating
//! (see `navarch_bus::api::Objects::delete`); this controller deletes everything inside (pods gracefully, through
//! their node agents), and once nothing is left removes the `kubernetes` finalizer and deletes the namespace.

mod actor;

use k8s_openapi::api::core::v1::Namespace;

pub use actor::NamespaceController;

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";

/// The next step for one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not being deleted: nothing to do.
    Nothing,
    /// Delete what is still inside (objects already being deleted are left to finish), then look again.
    DeleteContent,
    /// Empty: remove the `kubernetes` finalizer, then delete the namespace for good.
    Finalize,
}

/// What to do with `namespace` when `remaining` objects are still inside it.
pub fn plan(namespace: &Namespace, remaining: usize) -> Step {
    if namespace.metadata.deletion_timestamp.is_none() {
        return Step::Nothing;
    }
    if remaining > 0 {
        Step::DeleteContent
    } else {
        Step::Finalize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn namespace(deleting: bool) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = Some("demo".into());
        if deleting {
            ns.metadata.deletion_timestamp = Some(Time(crate::now()));
        }
        ns
    }

    #[test]
    fn a_live_namespace_is_left_alone_whatever_it_holds() {
        assert_eq!(plan(&namespace(false), 0), Step::Nothing);
        assert_eq!(plan(&namespace(false), 7), Step::Nothing);
    }

    #[test]
    fn a_deleted_namespace_is_emptied_before_it_goes() {
        assert_eq!(plan(&namespace(true), 3), Step::DeleteContent);
        assert_eq!(plan(&namespace(true), 0), Step::Finalize);
    }
}
