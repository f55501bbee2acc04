//! A container's startup, liveness and readiness probes, as the kubelet runs them: when each is due, what its
//! results add up to (started, ready, or "kill it"). Pure: the lifecycle asks which probes are due, the agent runs
//! them (see `prober`) and hands the results back.
//!
//! Rules, as the kubelet's: a probe first runs `initialDelaySeconds` after the container started, then every
//! `periodSeconds` (at least 1); while a startup probe has not succeeded, liveness and readiness do not run; a
//! startup or liveness probe failing `failureThreshold` times in a row gets the container killed (their
//! `successThreshold` is always 1); readiness turns true after `successThreshold` successes in a row and false
//! after `failureThreshold` failures in a row, and starts false. A container without a readiness probe is ready
//! once started.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::chrono::{DateTime, Utc};

use super::lifecycle::later;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}

impl ProbeKind {
    /// As the kubelet names it in messages (`Liveness probe failed: ...`).
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// What a probe or a hook does, resolved against its container (named ports looked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run a command in the container; exit code 0 is success.
    Exec {
        /// The program and its arguments.
        command: Vec<String>,
    },
    /// An HTTP GET; a status of 200 to 399 is success.
    HttpGet {
        /// Host to connect to (None: the pod's IP, filled in when the probe is sent).
        host: Option<String>,
        /// Port.
        port: u16,
        /// Request path (`/` when empty).
        path: String,
        /// `HTTP` or `HTTPS`.
        scheme: String,
        /// Extra request headers.
        headers: Vec<(String, String)>,
    },
    /// A TCP connect; success when it is accepted.
    TcpSocket {
        /// Host (None: the pod's IP).
        host: Option<String>,
        /// Port.
        port: u16,
    },
    /// Wait this long (a `sleep` hook).
    Sleep(Duration),
    /// Cannot be run; every attempt fails with this message (e.g. an unknown named port, a gRPC probe).
    Invalid(String),
}

impl Action {
    fn from_parts(
        exec: Option<&ExecAction>,
        http_get: Option<&HTTPGetAction>,
        tcp_socket: Option<&TCPSocketAction>,
        container: &Container,
    ) -> Option<Action> {
        if let Some(exec) = exec {
            return Some(Action::Exec {
                command: exec.command.clone().unwrap_or_default(),
            });
        }
        if let Some(h) = http_get {
            let port = match resolve_port(&h.port, container) {
                Ok(port) => port,
                Err(message) => return Some(Action::Invalid(message)),
            };
            return Some(Action::HttpGet {
                host: h.host.clone().filter(|h| !h.is_empty()),
                port,
                path: h.path.clone().unwrap_or_default(),
                scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".into()),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            });
        }
        if let Some(t) = tcp_socket {
            return Some(match resolve_port(&t.port, container) {
                Ok(port) => Action::TcpSocket {
                    host: t.host.clone().filter(|h| !h.is_empty()),
                    port,
                },
                Err(message) => Action::Invalid(message),
            });
        }
        None
    }

    /// A container's probe as an action.
    pub fn of_probe(probe: &Probe, container: &Container) -> Action {
        if probe.grpc.is_some() {
            return Action::Invalid("gRPC probes are not supported by this node".into());
        }
        Self::from_parts(
            probe.exec.as_ref(),
            probe.http_get.as_ref(),
            probe.tcp_socket.as_ref(),
            container,
        )
        .unwrap_or_else(|| Action::Invalid("the probe has no handler".into()))
    }

    /// A container's lifecycle hook (e.g. `preStop`) as an action; None when it names no handler.
    pub fn of_hook(hook: &LifecycleHandler, container: &Container) -> Option<Action> {
        if let Some(sleep) = &hook.sleep {
            return Some(Action::Sleep(Duration::from_secs(
                u64::try_from(sleep.seconds).unwrap_or(0),
            )));
        }
        Self::from_parts(
            hook.exec.as_ref(),
            hook.http_get.as_ref(),
            hook.tcp_socket.as_ref(),
            container,
        )
    }

    /// This action with `ip` as its host where it names none.
    pub fn with_default_host(mut self, ip: &str) -> Action {
        if let Action::HttpGet { host, .. } | Action::TcpSocket { host, .. } = &mut self {
            host.get_or_insert_with(|| ip.to_string());
        }
        self
    }
}

/// A port number, or the number of the container port of that name.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("port {name:?} is not a named port of the container"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port {number}"))
}

/// One probe as configured, with the Kubernetes defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What it does.
    pub action: Action,
    /// `initialDelaySeconds` (default 0).
    pub initial_delay: Duration,
    /// `periodSeconds` (default 10, at least 1).
    pub period: Duration,
    /// `timeoutSeconds` (default 1, at least 1).
    pub timeout: Duration,
    /// `successThreshold` (default 1; always 1 for startup and liveness).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3, at least 1).
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds`, if it sets one (for kills it causes).
    pub termination_grace: Option<Duration>,
}

fn seconds(value: Option<i32>, default: i32, min: i32) -> Duration {
    let s = value.unwrap_or(default).max(min);
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

fn count(value: Option<i32>, default: i32) -> u32 {
    u32::try_from(value.unwrap_or(default)).unwrap_or(0).max(1)
}

impl ProbeSpec {
    /// `probe` of `container` as a `kind` probe.
    pub fn new(kind: ProbeKind, probe: &Probe, container: &Container) -> Self {
        let success_threshold = match kind {
            ProbeKind::Readiness => count(probe.success_threshold, 1),
            ProbeKind::Startup | ProbeKind::Liveness => 1,
        };
        Self {
            action: Action::of_probe(probe, container),
            initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
            period: seconds(probe.period_seconds, 10, 1),
            timeout: seconds(probe.timeout_seconds, 1, 1),
            success_threshold,
            failure_threshold: count(probe.failure_threshold, 3),
            termination_grace: probe
                .termination_grace_period_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
        }
    }
}

/// One probe and where its current run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbeState {
    spec: ProbeSpec,
    next_at: Option<DateTime<Utc>>,
    in_flight: bool,
    successes: u32,
    failures: u32,
}

impl ProbeState {
    fn new(spec: ProbeSpec) -> Self {
        Self {
            spec,
            next_at: None,
            in_flight: false,
            successes: 0,
            failures: 0,
        }
    }

    fn reset(&mut self, started_at: DateTime<Utc>) {
        self.next_at = Some(later(started_at, self.spec.initial_delay));
        self.in_flight = false;
        self.successes = 0;
        self.failures = 0;
    }

    /// Counts one result; returns whether the threshold of its kind was just reached.
    fn count(&mut self, success: bool) -> bool {
        self.in_flight = false;
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            self.successes == self.spec.success_threshold
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            self.failures == self.spec.failure_threshold
        }
    }
}

/// What a probe result means for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do (readiness may have changed; the status shows it).
    Keep,
    /// Kill the container (it restarts per `restartPolicy`), within this grace period if the probe sets one.
    Kill {
        /// Why, in the kubelet's words (`failed liveness probe`).
        reason: String,
        /// The probe's `terminationGracePeriodSeconds`, if set.
        grace: Option<Duration>,
    },
}

/// A probe to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueProbe {
    /// Which one.
    pub kind: ProbeKind,
    /// What it does.
    pub action: Action,
    /// How long it may take.
    pub timeout: Duration,
}

/// The probes of one container and what they found in its current run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probes {
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
    running: bool,
    started: bool,
    ready: bool,
}

impl Probes {
    /// The probes `container` declares.
    pub fn of(container: &Container) -> Self {
        let state = |kind, probe: &Option<Probe>| {
            probe
                .as_ref()
                .map(|p| ProbeState::new(ProbeSpec::new(kind, p, container)))
        };
        Self {
            startup: state(ProbeKind::Startup, &container.startup_probe),
            liveness: state(ProbeKind::Liveness, &container.liveness_probe),
            readiness: state(ProbeKind::Readiness, &container.readiness_probe),
            ..Default::default()
        }
    }

    fn probe(&self, kind: ProbeKind) -> Option<&ProbeState> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }

    fn probe_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeState> {
        match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
        }
    }

    /// A run of the container started at `now`: every probe starts over.
    pub fn run_started(&mut self, now: DateTime<Utc>) {
        self.running = true;
        self.started = self.startup.is_none();
        self.ready = self.readiness.is_none();
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            if let Some(p) = self.probe_mut(kind) {
                p.reset(now);
            }
        }
    }

    /// The run ended or is being stopped: no more probes, not ready.
    pub fn run_ended(&mut self) {
        self.running = false;
        self.ready = false;
    }

    /// Whether the container counts as started (`containerStatus.started`): it runs and its startup probe, if any,
    /// succeeded.
    pub fn started(&self) -> bool {
        self.running && self.started
    }

    /// Whether the container is ready: started, and its readiness probe, if any, passed.
    pub fn ready(&self) -> bool {
        self.started() && self.ready
    }

    /// The probes due at `now`, marked as sent (each is due again one period later, and not before its result).
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<DueProbe> {
        if !self.running {
            return Vec::new();
        }
        let kinds: &[ProbeKind] = if self.started {
            &[ProbeKind::Liveness, ProbeKind::Readiness]
        } else {
            &[ProbeKind::Startup]
        };
        let mut due = Vec::new();
        for &kind in kinds {
            let Some(p) = self.probe_mut(kind) else {
                continue;
            };
            if p.in_flight || p.next_at.is_none_or(|at| at > now) {
                continue;
            }
            p.in_flight = true;
            p.next_at = Some(later(now, p.spec.period));
            due.push(DueProbe {
                kind,
                action: p.spec.action.clone(),
                timeout: p.spec.timeout,
            });
        }
        due
    }

    /// When the next probe is due (None: none is).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        if !self.running {
            return None;
        }
        let kinds: &[ProbeKind] = if self.started {
            &[ProbeKind::Liveness, ProbeKind::Readiness]
        } else {
            &[ProbeKind::Startup]
        };
        kinds
            .iter()
            .filter_map(|k| self.probe(*k))
            .filter(|p| !p.in_flight)
            .filter_map(|p| p.next_at)
            .min()
    }

    /// Takes the result of a `kind` probe sent in the current run.
    pub fn record(&mut self, kind: ProbeKind, success: bool) -> Verdict {
        if !self.running {
            return Verdict::Keep;
        }
        let Some(p) = self.probe_mut(kind) else {
            return Verdict::Keep;
        };
        if !p.in_flight {
            return Verdict::Keep; // not a result of this run's probe
        }
        let reached = p.count(success);
        let grace = p.spec.termination_grace;
        match (kind, success, reached) {
            (ProbeKind::Startup, true, true) => self.started = true,
            (ProbeKind::Readiness, ready, true) => self.ready = ready,
            (ProbeKind::Startup | ProbeKind::Liveness, false, true) => {
                return Verdict::Kill {
                    reason: format!("failed {} probe", kind.name().to_lowercase()),
                    grace,
                };
            }
            _ => {}
        }
        Verdict::Keep
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
