//! The namespace controller actor.
//!
//! Accepts: [`Change<Namespace>`] from its informer, [`crate::Stop`], and its own timer (every
//! [`RECHECK`] it looks again at namespaces still Terminating).
//! Emits, through [`Objects`] on `store.rpc`: deletes of every object in a Terminating namespace (pods gracefully),
//! the update that removes the `kubernetes` finalizer, and the final delete of the namespace.

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Namespace;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, resource, ApiError, DeleteOptions, Objects, Reason, RESOURCES};

use super::{plan, Step, FINALIZER};
use crate::informer::{Cache, Change, Informer};

/// How often Terminating namespaces are looked at again while their content goes away.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Empties and removes deleted namespaces. Start it with [`crate::controllers::start_controllers`].
pub struct NamespaceController {
    objects: Objects,
    namespaces: Cache<Namespace>,
    informer: Option<Informer<Namespace>>,
    /// Namespaces whose cleanup is running now.
    busy: HashSet<String>,
}

impl NamespaceController {
    pub(crate) fn new(objects: Objects) -> Self {
        Self {
            objects,
            namespaces: Cache::new(),
            informer: None,
            busy: HashSet::new(),
        }
    }

    fn clean(&mut self, namespace: &Namespace, ctx: &mut Context<Self>) {
        let Some(name) = namespace.metadata.name.clone() else {
            return;
        };
        if namespace.metadata.deletion_timestamp.is_none() || !self.busy.insert(name.clone()) {
            return;
        }
        let objects = self.objects.clone();
        let work = async move {
            let result = clean(&objects, &name).await;
            (name, result)
        };
        ctx.spawn(work.into_actor(self).map(|(name, result), act, _| {
            act.busy.remove(&name);
            if let Err(e) = result {
                tracing::warn!(namespace = %name, error = %e, "namespace cleanup failed; retrying");
            }
        }));
    }

    fn recheck(&mut self, ctx: &mut Context<Self>) {
        for namespace in self.namespaces.list() {
            self.clean(&namespace, ctx);
        }
    }
}

/// One pass over a Terminating namespace: delete what is inside, or finalize it once it is empty.
async fn clean(objects: &Objects, namespace: &str) -> Result<(), ApiError> {
    let ns_info = resource::by_kind("v1", "Namespace")
        .ok_or_else(|| ApiError::internal("no Namespace kind"))?;
    let mut remaining = Vec::new();
    for info in RESOURCES.iter().filter(|r| r.namespaced) {
        let (items, _) = objects.list(info, Some(namespace)).await?;
        remaining.extend(items.into_iter().map(|o| (info, o)));
    }
    let current: Namespace = match objects.get_as(None, namespace).await {
        Ok(ns) => ns,
        Err(e) if e.reason == Reason::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    match plan(&current, remaining.len()) {
        Step::Nothing => Ok(()),
        Step::DeleteContent => {
            for (info, object) in remaining.iter().filter(|(_, o)| !meta::is_deleting(o)) {
                let name = meta::name(object).unwrap_or_default();
                let options = DeleteOptions {
                    uid: meta::uid(object).map(str::to_string),
                    ..Default::default()
                };
                match objects.delete(info, Some(namespace), name, &options).await {
                    Ok(_) => tracing::info!(
                        namespace,
                        kind = info.kind,
                        name,
                        "deleted with its namespace"
                    ),
                    Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Step::Finalize => {
            let finalized = objects
                .update_with(ns_info, None, namespace, Part::Main, |mut ns| {
                    if let Some(list) = ns["spec"]["finalizers"].as_array_mut() {
                        list.retain(|f| f != FINALIZER);
                    }
                    Ok(ns)
                })
                .await;
            match finalized {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
            match objects
                .delete(ns_info, None, namespace, &DeleteOptions::default())
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace, "namespace deleted");
                    Ok(())
                }
                Err(e) if e.reason == Reason::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

impl Actor for NamespaceController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let informer = Informer::start(
            self.objects.clone(),
            self.namespaces.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informer = Some(informer);
        ctx.run_interval(RECHECK, |act, ctx| act.recheck(ctx));
        tracing::info!("namespace controller started");
    }
}

impl Handler<Change<Namespace>> for NamespaceController {
    type Result = ();

    fn handle(&mut self, change: Change<Namespace>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.recheck(ctx),
            Change::Applied(ns) => self.clean(&ns, ctx),
            Change::Deleted(_) => {}
        }
    }
}

impl Handler<crate::Stop> for NamespaceController {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
