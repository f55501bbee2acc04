//! Serves `kubectl logs` for the pods on this node: answers [`LogRequest`]s on the agent's subject
//! ([`navarch_bus::Subjects::agent`]) and streams the log file through a [`ChunkSender`].
//!
//! Accepts: [`LogRequest`] on `agent.<node>`. Emits: a [`LogReply`] to each, then [`LogChunk`]s as requests to the
//! request's inbox (see [`navarch_bus::logs`]).
//!
//! [`LogChunk`]: navarch_bus::logs::LogChunk

use std::path::{Path, PathBuf};
use std::sync::Arc;

use navarch_bus::logs::{ChunkSender, LogReply, LogRequest, StreamError};
use navarch_bus::{codec, Bus, Message, Subscription};

use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::meta;

use super::logs::{send_log, LogError, LogFile, ReadOptions};
use crate::runtime::{self, ContainerState, Runtime};

/// Largest request accepted: a request is a few names and numbers.
const MAX_REQUEST: usize = 64 * 1024;

/// Subscribes to the log requests for `node`; serve them with [`serve`].
pub(crate) async fn subscribe(bus: &Bus, node: &str) -> navarch_bus::Result<Subscription> {
    bus.subscribe(&bus.subjects().agent(node)).await
}

/// Answers every log request on `requests`, each in its own task, until the subscription ends.
pub(crate) async fn serve(
    bus: Bus,
    mut requests: Subscription,
    data_dir: PathBuf,
    runtime: Arc<dyn Runtime>,
) {
    while let Some(message) = requests.next().await {
        let (bus, data_dir, runtime) = (bus.clone(), data_dir.clone(), runtime.clone());
        tokio::spawn(async move { handle(&bus, &message, &data_dir, runtime).await });
    }
}

async fn handle(bus: &Bus, message: &Message, data_dir: &Path, runtime: Arc<dyn Runtime>) {
    let request = if message.payload.len() > MAX_REQUEST {
        Err("log request too large".to_string())
    } else {
        codec::decode::<LogRequest>(&message.payload).map_err(|e| e.to_string())
    };
    let opened = request.and_then(|r| open(data_dir, &r).map(|log| (r, log)));
    let reply = LogReply {
        error: opened.as_ref().err().cloned(),
    };
    if let Err(e) = bus.respond_encoded(message, &reply).await {
        tracing::debug!(error = %e, "cannot answer a log request");
        return;
    }
    let Ok((request, log)) = opened else { return };
    let mut sender = ChunkSender::new(bus.clone(), request.inbox.clone());
    // The previous instance has stopped for good: there is nothing to follow.
    let follow = request.follow && !request.previous;
    let (uid, container) = (request.uid.clone(), request.container.clone());
    let running = move || {
        let (runtime, uid, container) = (runtime.clone(), uid.clone(), container.clone());
        async move {
            runtime.list().await.iter().any(|c| {
                c.id.pod_uid == uid
                    && c.id.container == container
                    && c.state == ContainerState::Running
            })
        }
    };
    let error = match send_log(log, request.limit_bytes, follow, &mut sender, running).await {
        Ok(_) => None,
        Err(LogError::Stream(StreamError::Gone)) => {
            tracing::debug!(pod = %request.pod, container = %request.container, "log reader went away");
            return;
        }
        Err(e) => {
            tracing::warn!(pod = %request.pod, container = %request.container, error = %e, "log stream failed");
            Some(e.to_string())
        }
    };
    if let Err(e) = sender.finish(error).await {
        tracing::debug!(error = %e, "cannot end a log stream");
    }
}

/// What of the log a request asks for; `now` turns `sinceSeconds` into a time (the node's clock, as the kubelet's).
fn read_options(request: &LogRequest, now: DateTime<Utc>) -> Result<ReadOptions, String> {
    let since = match (request.since_seconds, request.since_time.as_deref()) {
        (Some(_), Some(_)) => {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into())
        }
        (Some(seconds), None) => Some(now - k8s_openapi::chrono::Duration::seconds(seconds.max(0))),
        (None, Some(time)) => Some(
            DateTime::parse_from_rfc3339(time)
                .map_err(|e| format!("invalid sinceTime {time:?}: {e}"))?
                .with_timezone(&Utc),
        ),
        (None, None) => None,
    };
    Ok(ReadOptions {
        tail_lines: request.tail_lines,
        since,
        timestamps: request.timestamps,
    })
}

/// Opens the log a request asks for, or says why not as Kubernetes does.
fn open(data_dir: &Path, request: &LogRequest) -> Result<LogFile, String> {
    let options = read_options(request, meta::now())?;
    let (ns, pod, uid, container) = (
        request.namespace.as_str(),
        request.pod.as_str(),
        request.uid.as_str(),
        request.container.as_str(),
    );
    // Names become path components: nothing may step out of the pod's directory.
    let unsafe_name = |n: &str| n.is_empty() || n.contains('/') || n.starts_with('.');
    if [ns, pod, uid, container].into_iter().any(unsafe_name) {
        return Err("invalid log request: a name is empty or holds a path".into());
    }
    if !runtime::pod_dir(data_dir, ns, pod, uid).is_dir() {
        return Err(format!(
            "pod {pod:?} in namespace {ns:?} has not started on this node"
        ));
    }
    let path = if request.previous {
        runtime::previous_log_path(data_dir, ns, pod, uid, container)
    } else {
        runtime::log_path(data_dir, ns, pod, uid, container)
    };
    LogFile::open(&path, &options).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if request.previous => {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        }
        std::io::ErrorKind::NotFound => {
            format!("container {container:?} in pod {pod:?} is waiting to start")
        }
        _ => format!("cannot read log file {}: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LogRequest {
        LogRequest {
            namespace: "demo".into(),
            pod: "web".into(),
            uid: "u1".into(),
            container: "main".into(),
            tail_lines: Some(3),
            limit_bytes: None,
            follow: false,
            previous: false,
            since_seconds: None,
            since_time: None,
            timestamps: true,
            inbox: "x".into(),
        }
    }

    #[test]
    fn since_is_a_time_on_the_nodes_clock() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let options = read_options(
            &LogRequest {
                since_seconds: Some(10),
                ..request()
            },
            now,
        )
        .unwrap();
        assert_eq!(
            options.since.unwrap().to_rfc3339(),
            "2026-11-27T12:00:00+00:00"
        );
        assert_eq!((options.tail_lines, options.timestamps), (Some(3), true));
        let at = LogRequest {
            since_time: Some("2026-11-27T11:00:00Z".into()),
            ..request()
        };
        let options = read_options(&at, now).unwrap();
        assert_eq!(
            options.since.unwrap().to_rfc3339(),
            "2026-11-27T11:00:00+00:00"
        );
        let bad = LogRequest {
            since_time: Some("yesterday".into()),
            ..request()
        };
        assert!(read_options(&bad, now).is_err());
        let both = LogRequest {
            since_seconds: Some(1),
            ..at
        };
        assert!(read_options(&both, now).is_err());
    }
}
