//! `navarch store member|get|status`: tools that talk to a running store cluster over NATS and print a table, one
//! line, or YAML. Errors become one line and a non-zero exit in `main`.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use navarch_bus::store::{
    Member, MemberAddRequest, StatusResponse, StoreClient, StoreRequest, StoreResponse,
};

use crate::cli::{MemberAction, StoreTool};
use crate::run::connect;

/// How long `status` waits for each member.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs one store tool.
pub async fn run(tool: StoreTool) -> Result<()> {
    match tool {
        StoreTool::Member { bus, action } => {
            let client = StoreClient::new(connect(&bus.into(), "store-tool").await?);
            member(&client, action).await
        }
        StoreTool::Get { bus, key, prefix } => {
            let client = StoreClient::new(connect(&bus.into(), "store-tool").await?);
            get(&client, &key, prefix).await
        }
        StoreTool::Status { bus } => {
            let client = StoreClient::new(connect(&bus.into(), "store-tool").await?);
            status(&client).await
        }
    }
}

async fn member(client: &StoreClient, action: MemberAction) -> Result<()> {
    match action {
        MemberAction::List => {
            let list = client.member_list().await.context("listing members")?;
            print!("{}", member_table(&list.members));
        }
        MemberAction::Add { id, learner, name } => {
            let request = MemberAddRequest {
                id,
                name: name.unwrap_or_default(),
                is_learner: learner,
            };
            let added = client
                .member_add(request)
                .await
                .with_context(|| format!("adding member {id}"))?;
            let name = added.member.map(|m| m.name).unwrap_or_default();
            let role = if learner { "learner" } else { "voter" };
            println!("added member {id} ({name}) as a {role}");
        }
        MemberAction::Remove { id } => {
            client
                .member_remove(id)
                .await
                .with_context(|| format!("removing member {id}"))?;
            println!("removed member {id}");
        }
        MemberAction::Promote { id } => {
            client
                .member_promote(id)
                .await
                .with_context(|| format!("promoting member {id}"))?;
            println!("promoted member {id} to a voter");
        }
    }
    Ok(())
}

async fn get(client: &StoreClient, key: &str, prefix: bool) -> Result<()> {
    if prefix {
        let list = client
            .list(key.as_bytes())
            .await
            .with_context(|| format!("reading {key}"))?;
        for kv in &list.kvs {
            println!("---\n# {}", String::from_utf8_lossy(&kv.key));
            print!("{}", as_yaml(&kv.value));
        }
        return Ok(());
    }
    match client
        .get(key.as_bytes())
        .await
        .with_context(|| format!("reading {key}"))?
    {
        Some(kv) => print!("{}", as_yaml(&kv.value)),
        None => bail!("{key} not found"),
    }
    Ok(())
}

async fn status(client: &StoreClient) -> Result<()> {
    let list = client.member_list().await.context("listing members")?;
    let mut rows = Vec::new();
    for member in &list.members {
        let role = if member.is_learner {
            "learner"
        } else {
            "voter"
        };
        let answer = navarch_store::network::forward(
            client.bus(),
            member.id,
            StoreRequest::Status,
            STATUS_TIMEOUT,
        )
        .await;
        rows.push(match answer {
            Ok(Ok(StoreResponse::Status(s))) => status_row(member, role, &s),
            Ok(Err(e)) => unreachable_row(member, role, &e.to_string()),
            Ok(Ok(other)) => unreachable_row(member, role, &format!("answered {other:?}")),
            Err(e) => unreachable_row(member, role, &e.to_string()),
        });
    }
    let headers = [
        "ID",
        "NAME",
        "ROLE",
        "LEADER",
        "TERM",
        "RAFT INDEX",
        "APPLIED",
        "REVISION",
        "KEYS",
        "DB SIZE",
    ];
    print!("{}", table(&headers, &rows));
    Ok(())
}

fn status_row(member: &Member, role: &str, s: &StatusResponse) -> Vec<String> {
    let role = if s.leader == member.id {
        format!("{role} (leader)")
    } else {
        role.to_string()
    };
    vec![
        member.id.to_string(),
        member.name.clone(),
        role,
        s.leader.to_string(),
        s.header.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.header.revision.to_string(),
        s.keys.to_string(),
        bytes(s.db_size),
    ]
}

fn unreachable_row(member: &Member, role: &str, why: &str) -> Vec<String> {
    let mut row = vec![
        member.id.to_string(),
        member.name.clone(),
        format!("{role} (unreachable: {why})"),
    ];
    row.resize(10, "-".into());
    row
}

/// The member list as `navarch store member list` prints it.
fn member_table(members: &[Member]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.name.clone(),
                if m.is_learner { "learner" } else { "voter" }.to_string(),
                m.peer_urls.join(","),
                m.client_urls.join(","),
            ]
        })
        .collect();
    table(&["ID", "NAME", "ROLE", "PEER URLS", "CLIENT URLS"], &rows)
}

/// Left-aligned columns separated by two spaces, without trailing blanks.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A stored value as YAML: JSON (every Navarch object) converted, an encrypted Secret as a line naming its key (the
/// tool holds no keys), anything else as text.
fn as_yaml(value: &[u8]) -> String {
    if let Some(key) = navarch_bus::api::encryption::sealed_with(value) {
        return format!(
            "# encrypted with key {key:?} ({} bytes; read it through the API)\n",
            value.len()
        );
    }
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(json) => serde_norway::to_string(&json)
            .unwrap_or_else(|_| format!("{}\n", String::from_utf8_lossy(value))),
        Err(_) => format!("{}\n", String::from_utf8_lossy(value)),
    }
}

/// `bytes` in B, KiB, MiB or GiB.
fn bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_print_as_yaml_and_other_values_as_text() {
        let pod =
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"}}"#;
        assert_eq!(
            as_yaml(pod),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n"
        );
        assert_eq!(as_yaml(b"plain text"), "plain text\n");
    }

    #[test]
    fn encrypted_values_print_as_the_key_they_need() {
        let keys = navarch_bus::api::EncryptionKeys::new(vec![("k1".into(), [7; 32])]).unwrap();
        let sealed = keys.seal(b"/registry/secrets/default/s", b"{}").unwrap();
        let shown = as_yaml(&sealed);
        assert!(shown.starts_with("# encrypted with key \"k1\""), "{shown}");
    }

    #[test]
    fn tables_align_columns() {
        let members = vec![
            Member {
                id: 1,
                name: "member-1".into(),
                is_learner: false,
                client_urls: vec![],
                peer_urls: vec!["navarch.default.store.raft.1".into()],
            },
            Member {
                id: 12,
                name: "east".into(),
                is_learner: true,
                client_urls: vec!["http://127.0.0.1:2379".into()],
                peer_urls: vec!["navarch.default.store.raft.12".into()],
            },
        ];
        assert_eq!(
            member_table(&members),
            "ID  NAME      ROLE     PEER URLS                      CLIENT URLS\n\
             1   member-1  voter    navarch.default.store.raft.1\n\
             12  east      learner  navarch.default.store.raft.12  http://127.0.0.1:2379\n"
        );
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
