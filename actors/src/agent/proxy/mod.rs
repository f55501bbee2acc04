//! The node agent's service proxy and cluster DNS: connections to a Service's `clusterIP:port` and to
//! `<any local address>:nodePort` are spread over its ready endpoints by nftables DNAT rules that follow the
//! endpoints as they change, and the agent answers DNS for the cluster on its pod bridge's address.
//!
//! [`model`] reads what to route from Services and Endpoints, [`rules`] writes the nftables ruleset (pure, exact
//! text), [`throttle`] gathers changes into rewrites; [`ServiceProxy`] watches Services and Endpoints, loads the
//! ruleset with `nft -f -` (the whole table replaced in one transaction) and refreshes the DNS records
//! ([`crate::agent::dns`]). It runs only where pods have their own network (root and a pod CIDR): without root
//! there is nothing to DNAT into and no right to change the host's rules, which the agent logs once at start.
//!
//! Accepts: [`Change<Service>`], [`Change<Endpoints>`] from its informers, [`StopProxy`], and its own timers (the
//! throttled rewrite, a full rewrite every [`RESYNC`]). Emits: nothing on the bus; `nft` transactions on the host.
//!
//! Several agents on one host (tests run two or three) each keep a table of their own (`navarch_proxy_<node>`) and
//! never touch another's, except to remove one whose agent process is gone (see `nft::remove_orphaned_tables`).
//! Their DNAT rules for cluster IPs and node ports are the same, as they read the same Services; the kernel NATs a
//! connection once (the first nat chain that binds it wins, later ones are skipped), so the duplicates are harmless.
//! What is specific to an agent, masquerading connections that come back out of its own bridge, names that bridge.

pub mod model;
mod nft;
pub mod rules;
pub mod throttle;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use navarch_bus::api::Objects;

use super::dns::{self, DnsServer, Records, SharedRecords};
use crate::informer::{Cache, Change, Informer, ObjectKey};
use crate::runtime::netns::{self, Cidr};
use throttle::Throttle;

/// How often the whole ruleset is loaded again even if nothing changed (kube-proxy's `syncPeriod`), which puts back
/// a table someone flushed.
pub const RESYNC: Duration = Duration::from_secs(30);

/// How soon after a failed load the ruleset is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Stops the proxy: its informers end and its table is removed. Answered once that is done.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopProxy;

/// Watches Services and Endpoints and keeps the node's nftables table and DNS records in line with them.
pub struct ServiceProxy {
    objects: Objects,
    services: Cache<Service>,
    endpoints: Cache<Endpoints>,
    informers: Option<(Informer<Service>, Informer<Endpoints>)>,
    scope: rules::Scope,
    /// The `nft` binary; None: not installed, so only DNS is served.
    nft: Option<PathBuf>,
    throttle: Throttle,
    /// The text last loaded successfully.
    loaded: Option<String>,
    records: SharedRecords,
    stopping: bool,
}

impl ServiceProxy {
    fn changed(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if let Some(delay) = self.throttle.changed(tokio::time::Instant::now()) {
            ctx.run_later(delay, |act, ctx| act.sync(false, ctx));
        }
    }

    /// Rewrites the DNS records and, when it differs from what is loaded (or `force`), the ruleset. Waits until
    /// both caches were filled once, so that Services are never routed as if they had no endpoints.
    fn sync(&mut self, force: bool, ctx: &mut Context<Self>) {
        self.throttle.rewriting(tokio::time::Instant::now());
        if self.stopping || !self.services.is_synced() || !self.endpoints.is_synced() {
            return;
        }
        let services = self.services.list();
        let pairs: Vec<(Arc<Service>, Option<Arc<Endpoints>>)> = services
            .into_iter()
            .map(|s| {
                let e = self.endpoints.get(&ObjectKey::of(&s.metadata));
                (s, e)
            })
            .collect();
        self.records.replace(Records::from_objects(
            pairs.iter().map(|(s, e)| (s.as_ref(), e.as_deref())),
        ));
        let Some(nft) = self.nft.clone() else { return };
        let ports: Vec<model::ProxiedPort> = pairs
            .iter()
            .flat_map(|(s, e)| model::proxied_ports(s, e.as_deref()))
            .collect();
        let text = rules::ruleset(&self.scope, &ports);
        if !force && self.loaded.as_ref() == Some(&text) {
            return;
        }
        let table = self.scope.table.clone();
        let work = async move { (nft::load(&nft, &text).await, text) };
        // One load at a time: the actor waits for it before handling the next change.
        ctx.wait(work.into_actor(self).map(move |(result, text), act, ctx| match result {
            Ok(()) => {
                tracing::debug!(%table, services = ports.len(), "service proxy rules loaded");
                act.loaded = Some(text);
            }
            Err(e) => {
                tracing::warn!(%table, error = %e, "cannot load the service proxy rules; retrying");
                act.loaded = None;
                ctx.run_later(RETRY, |act, ctx| act.changed(ctx));
            }
        }));
    }
}

impl Actor for ServiceProxy {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(nft) = self.nft.clone() {
            let own = self.scope.table.clone();
            ctx.wait(async move { nft::remove_orphaned_tables(&nft, &own).await }.into_actor(self));
        }
        let services = Informer::start(
            self.objects.clone(),
            self.services.clone(),
            None,
            ctx.address().recipient(),
        );
        let endpoints = Informer::start(
            self.objects.clone(),
            self.endpoints.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((services, endpoints));
        ctx.run_interval(RESYNC, |act, ctx| act.sync(true, ctx));
        tracing::info!(table = %self.scope.table, "service proxy started");
    }
}

impl Handler<Change<Service>> for ServiceProxy {
    type Result = ();

    fn handle(&mut self, _: Change<Service>, ctx: &mut Context<Self>) {
        self.changed(ctx);
    }
}

impl Handler<Change<Endpoints>> for ServiceProxy {
    type Result = ();

    fn handle(&mut self, _: Change<Endpoints>, ctx: &mut Context<Self>) {
        self.changed(ctx);
    }
}

impl Handler<StopProxy> for ServiceProxy {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopProxy, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        self.informers = None;
        let (nft, table) = (self.nft.clone(), self.scope.table.clone());
        Box::pin(
            async move {
                if let Some(nft) = nft {
                    if let Err(e) = nft::load(&nft, &rules::removal(&table)).await {
                        tracing::warn!(%table, error = %e, "cannot remove the service proxy table");
                    }
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

/// The running proxy and DNS server of an agent.
#[derive(Debug)]
pub struct ServicesHandle {
    proxy: Addr<ServiceProxy>,
    dns: Mutex<Option<DnsServer>>,
    dns_address: Option<Ipv4Addr>,
}

impl ServicesHandle {
    /// The address pods use as their nameserver, when the DNS server runs.
    pub fn dns_address(&self) -> Option<Ipv4Addr> {
        self.dns_address
    }

    /// Stops DNS and removes the proxy's table.
    pub async fn shutdown(&self) {
        drop(self.dns.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.proxy.send(StopProxy).await;
    }
}

/// Starts node `node`'s service proxy and its DNS server on the gateway address of its pod bridge for `cidr`
/// (UDP and TCP port 53), forwarding other names to the resolvers of the host's `/etc/resolv.conf`. Each part
/// that cannot start (no `nft`, the port taken) is logged and left out; the rest runs.
pub async fn start(objects: Objects, node: &str, cidr: Cidr) -> ServicesHandle {
    let nft = netns::find_tool("nft");
    if nft.is_none() {
        tracing::warn!(
            "nft is not installed: no service proxy (cluster IPs and node ports are not routed)"
        );
    }
    let records = SharedRecords::default();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstreams = dns::nameservers(&host_resolv);
    if upstreams.is_empty() {
        tracing::warn!("no nameserver in /etc/resolv.conf: names outside the cluster are refused");
    }
    let address = SocketAddr::from((cidr.gateway(), 53));
    let dns = match dns::start(address, records.clone(), upstreams, 53).await {
        Ok(server) => {
            tracing::info!(%address, "cluster DNS serving");
            Some(server)
        }
        Err(e) => {
            tracing::warn!(%address, error = %e, "cannot serve cluster DNS; pods keep the host's resolv.conf");
            None
        }
    };
    let scope = rules::Scope {
        table: rules::table_name(node),
        bridge: netns::bridge_name(&cidr),
        comment: rules::owner_comment(node, std::process::id()),
    };
    let proxy = ServiceProxy {
        objects,
        services: Cache::new(),
        endpoints: Cache::new(),
        informers: None,
        scope,
        nft,
        throttle: Throttle::new(Duration::from_millis(100), Duration::from_secs(1)),
        loaded: None,
        records,
        stopping: false,
    }
    .start();
    ServicesHandle {
        proxy,
        dns_address: dns.as_ref().map(|_| cidr.gateway()),
        dns: Mutex::new(dns),
    }
}

#[cfg(test)]
mod tests;
