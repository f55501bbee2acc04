//! What a node agent registers its Node with, from the kubelet's flags: `--node-labels`, `--register-with-taints`
//! and `--system-reserved`, parsed and checked here (pure).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use navarch_bus::api::quantity::Quantity;
use navarch_bus::api::{is_label_value, is_qualified_name};

/// What the node keeps for itself (the kubelet's `--system-reserved`), subtracted from capacity in allocatable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// CPU, in millicores.
    pub cpu_millis: u64,
    /// Memory, in bytes.
    pub memory_bytes: u64,
}

/// `k=v,k2=v2` (the kubelet's `--node-labels`): each key a qualified name, each value a label value.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("label {item:?} is not key=value"))?;
        if !is_qualified_name(key) {
            return Err(format!("label key {key:?} is not a valid label name"));
        }
        if !is_label_value(value) {
            return Err(format!(
                "label value {value:?} of {key:?} is not a valid label value"
            ));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// `key=value:Effect,key2:Effect` (the kubelet's `--register-with-taints`); effects are `NoSchedule`,
/// `PreferNoSchedule` and `NoExecute`.
pub fn parse_taints(text: &str) -> Result<Vec<Taint>, String> {
    let mut taints: Vec<Taint> = Vec::new();
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let (key_value, effect) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("taint {item:?} is not key=value:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "taint {item:?}: effect {effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
        let (key, value) = match key_value.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (key_value, None),
        };
        if !is_qualified_name(key) {
            return Err(format!(
                "taint {item:?}: key {key:?} is not a valid label name"
            ));
        }
        if value.is_some_and(|v| !is_label_value(v)) {
            return Err(format!("taint {item:?}: value is not a valid label value"));
        }
        if taints.iter().any(|t| t.key == key && t.effect == effect) {
            return Err(format!("taint {item:?}: {key}:{effect} is given twice"));
        }
        taints.push(Taint {
            key: key.to_string(),
            value: value.map(str::to_string),
            effect: effect.to_string(),
            time_added: None,
        });
    }
    Ok(taints)
}

/// `cpu=100m,memory=256Mi` (the kubelet's `--system-reserved`); only `cpu` and `memory` are known.
pub fn parse_reserved(text: &str) -> Result<Reserved, String> {
    let mut reserved = Reserved::default();
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let (name, amount) = item
            .split_once('=')
            .ok_or_else(|| format!("reservation {item:?} is not resource=quantity"))?;
        let milli = Quantity::parse(amount)
            .map_err(|e| format!("reservation {item:?}: {e}"))?
            .milli();
        let milli = u64::try_from(milli)
            .map_err(|_| format!("reservation {item:?}: must be a non-negative quantity"))?;
        match name {
            "cpu" => reserved.cpu_millis = milli,
            // Memory is whole bytes; a fraction of a byte rounds up, as Kubernetes' Value() does.
            "memory" => reserved.memory_bytes = milli.div_ceil(1000),
            other => {
                return Err(format!(
                    "reservation {item:?}: resource {other:?} is not cpu or memory"
                ))
            }
        }
    }
    Ok(reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        let labels = parse_labels("disk=ssd,example.com/zone=a,empty=").unwrap();
        assert_eq!(labels["disk"], "ssd");
        assert_eq!(labels["example.com/zone"], "a");
        assert_eq!(labels["empty"], "");
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("disk").is_err());
        assert!(parse_labels("-bad=x").is_err());
        assert!(parse_labels("disk=not ok").is_err());
        assert!(parse_labels("Bad_Prefix/x=y").is_err());
    }

    #[test]
    fn taints_are_checked() {
        let taints = parse_taints("dedicated=infra:NoSchedule,gpu:NoExecute").unwrap();
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[0].key, "dedicated");
        assert_eq!(taints[0].value.as_deref(), Some("infra"));
        assert_eq!(taints[0].effect, "NoSchedule");
        assert_eq!(taints[1].key, "gpu");
        assert_eq!(taints[1].value, None);
        assert_eq!(taints[1].effect, "NoExecute");
        assert!(parse_taints("dedicated=infra").is_err());
        assert!(parse_taints("dedicated=infra:Sometimes").is_err());
        assert!(parse_taints("=infra:NoSchedule").is_err());
        assert!(parse_taints("a=b:NoSchedule,a=c:NoSchedule").is_err());
        assert!(parse_taints("a=b:NoSchedule,a=c:NoExecute").is_ok());
    }

    #[test]
    fn reservations_read_like_the_kubelets() {
        assert_eq!(
            parse_reserved("cpu=100m,memory=256Mi").unwrap(),
            Reserved {
                cpu_millis: 100,
                memory_bytes: 256 * 1024 * 1024
            }
        );
        assert_eq!(parse_reserved("cpu=1").unwrap().cpu_millis, 1000);
        assert_eq!(
            parse_reserved("memory=1G").unwrap().memory_bytes,
            1_000_000_000
        );
        assert!(parse_reserved("cpu=lots").is_err());
        assert!(parse_reserved("cpu=-1").is_err());
        assert!(parse_reserved("gpu=1").is_err());
        assert!(parse_reserved("cpu").is_err());
    }
}
