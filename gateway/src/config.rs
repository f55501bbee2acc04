//! The gateway's configuration: where it listens and how long it lets requests run.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use navarch_bus::api::{EncryptionKeys, ServiceCidr};

/// How the gateway serves. Every field has a default taken from kube-apiserver where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Address to listen on. Default 127.0.0.1:6443: kube-apiserver's secure port, on loopback unless asked
    /// otherwise. Port 0 picks a free port ([`crate::RunningGateway::addr`] tells which).
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413. Default 3 MiB: kube-apiserver's `MaxRequestBodyBytes`.
    pub max_body_bytes: usize,
    /// How long a watch runs when the client does not say (`timeoutSeconds`). Default 30 min:
    /// kube-apiserver's `--min-request-timeout` (1800 s).
    pub default_watch_timeout: Duration,
    /// Longest watch a client may ask for. Default 1 h (kube-apiserver picks between 1 and 2 × min-request-timeout).
    pub max_watch_timeout: Duration,
    /// Pause between attempts to create the built-in namespaces while the store does not answer. Default 1 s.
    pub bootstrap_retry: Duration,
    /// Requests each client may make (by address); over it, 429 with `Retry-After`. None: unlimited. Default 500/s
    /// with bursts of 1,000: far above what kubectl or a controller sends, low enough that one runaway loop cannot
    /// take the gateway from everyone else.
    pub rate_limit: Option<crate::RateLimit>,
    /// How long a list at a resourceVersion the store has not reached waits for it before the answer is 504
    /// "Too large resource version". Default 3 s: how long kube-apiserver's watch cache waits to be fresh enough.
    pub list_revision_wait: Duration,
    /// Where Services' cluster IPs come from (`--service-cluster-ip-range`). Default 10.96.0.0/16, kubeadm's
    /// default service subnet; its first address is the `kubernetes` Service's.
    pub service_cidr: ServiceCidr,
    /// How often the keys of Service addresses no longer held are removed from the store
    /// ([`navarch_bus::api::Objects::release_unheld`]). Default 3 min: kube-apiserver's IP and node-port repair
    /// interval.
    pub address_repair_interval: Duration,
    /// Keys that encrypt Secrets at rest (the first writes, all read). Default none, kube-apiserver's default
    /// without `--encryption-provider-config`: Secrets are stored in plain JSON (`navarch up` always gives keys).
    pub encryption: Option<EncryptionKeys>,
    /// Who may call: bearer tokens and the service-account signing key. Default: none, so every request but the
    /// health probes is 401 until tokens are given (`navarch up` writes an admin token into its kubeconfig).
    pub authentication: crate::auth::Authentication,
    /// The serving certificate and key for HTTPS. Default None: plain HTTP, kept for tests that run the gateway
    /// in-process; every role the `navarch` binary runs serves TLS (`up` and `gateway` always set this).
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 6443)),
            max_body_bytes: 3 * 1024 * 1024,
            default_watch_timeout: Duration::from_secs(1800),
            max_watch_timeout: Duration::from_secs(3600),
            bootstrap_retry: Duration::from_secs(1),
            rate_limit: Some(crate::RateLimit {
                qps: 500,
                burst: 1000,
            }),
            list_revision_wait: Duration::from_secs(3),
            service_cidr: ServiceCidr::default(),
            address_repair_interval: Duration::from_secs(180),
            encryption: None,
            authentication: crate::auth::Authentication::default(),
            tls: None,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_body_bytes` is 0: no request with a body could be served. Not retryable.
    #[error("max_body_bytes must be positive")]
    NoBody,
    /// A watch timeout is zero or the default exceeds the maximum. Not retryable.
    #[error("watch timeouts must be positive and default_watch_timeout ({default:?}) at most max_watch_timeout ({max:?})")]
    WatchTimeout {
        /// The default asked for.
        default: Duration,
        /// The maximum asked for.
        max: Duration,
    },
    /// `bootstrap_retry` is zero: the gateway would spin while the store is down. Not retryable.
    #[error("bootstrap_retry must be positive")]
    BootstrapRetry,
    /// `address_repair_interval` is zero: the repair loop would spin. Not retryable.
    #[error("address_repair_interval must be positive")]
    RepairInterval,
    /// The rate limit's rate is not a positive number or its burst is 0. Not retryable.
    #[error("the rate limit needs a positive rate and burst")]
    RateLimit,
    /// The TLS certificate or key does not parse, or they do not belong together. Not retryable.
    #[error("TLS: {0}")]
    Tls(String),
}

impl GatewayConfig {
    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::NoBody);
        }
        if self.default_watch_timeout.is_zero()
            || self.max_watch_timeout.is_zero()
            || self.default_watch_timeout > self.max_watch_timeout
        {
            return Err(ConfigError::WatchTimeout {
                default: self.default_watch_timeout,
                max: self.max_watch_timeout,
            });
        }
        if self.bootstrap_retry.is_zero() {
            return Err(ConfigError::BootstrapRetry);
        }
        if self.address_repair_interval.is_zero() {
            return Err(ConfigError::RepairInterval);
        }
        if let Some(limit) = self.rate_limit {
            if limit.qps == 0 || limit.burst == 0 {
                return Err(ConfigError::RateLimit);
            }
        }
        if let Some(tls) = &self.tls {
            tls.server_config()
                .map_err(|e| ConfigError::Tls(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_checks_catch_nonsense() {
        let config = GatewayConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.listen.port(), 6443);
        let no_body = GatewayConfig {
            max_body_bytes: 0,
            ..GatewayConfig::default()
        };
        assert_eq!(no_body.validate(), Err(ConfigError::NoBody));
        let inverted = GatewayConfig {
            default_watch_timeout: Duration::from_secs(10),
            max_watch_timeout: Duration::from_secs(5),
            ..GatewayConfig::default()
        };
        assert!(matches!(
            inverted.validate(),
            Err(ConfigError::WatchTimeout { .. })
        ));
        let bad_tls = GatewayConfig {
            tls: Some(crate::tls::TlsConfig {
                cert_chain_pem: b"-----BEGIN CERTIFICATE-----\nAAAA".to_vec(),
                key_pem: Vec::new(),
                files: None,
            }),
            ..GatewayConfig::default()
        };
        assert!(matches!(bad_tls.validate(), Err(ConfigError::Tls(_))));
    }
}
