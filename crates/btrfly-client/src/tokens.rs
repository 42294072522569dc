//! `btrfly token create|ls|revoke`: the control API's tokens (admin
//! scope), and the aligned tables the CLI prints.

use std::process::ExitCode;

use anyhow::Result;
use btrfly_core::api::{TokenCreateRequest, TokenInfo};
use btrfly_core::{Scope, TokenId, TokenName};

use crate::args::ServerArgs;
use crate::commands::rfc3339;
use crate::target::connect;

/// Prints rows as columns separated by two spaces, each as wide as its
/// widest cell (the last column is not padded).
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// `btrfly token create --name N --scope S`: prints the new token alone on
/// stdout (it is shown this once; the server keeps only its sha256), and
/// what it is on stderr.
///
/// # Errors
/// An invalid name, a name taken by a live token, a calling token without
/// the admin scope, the server unreachable.
pub async fn create(args: &ServerArgs, name: &str, scope: Scope) -> Result<ExitCode> {
    let name = TokenName::new(name)?;
    let target = connect(args, None)?;
    let created = target
        .client
        .create_token(&TokenCreateRequest {
            name: name.to_string(),
            scope,
        })
        .await
        .map_err(|e| target.explain(e))?;
    eprintln!(
        "btrfly: created token {} (name {}, scope {}); it is shown only this once: keep it in a secret store",
        created.info.id, created.info.name, created.info.scope
    );
    println!("{}", created.token);
    Ok(ExitCode::SUCCESS)
}

fn state(t: &TokenInfo) -> String {
    match t.revoked_at {
        Some(at) => format!("revoked {}", rfc3339(at)),
        None => "live".to_owned(),
    }
}

/// `btrfly token ls [--json]`: every token, revoked ones included; never
/// a secret (the server has none to show).
///
/// # Errors
/// A calling token without the admin scope, the server unreachable.
pub async fn ls(args: &ServerArgs, json: bool) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let list = target
        .client
        .tokens()
        .await
        .map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["ID", "NAME", "SCOPE", "CREATED", "BY", "STATE"]
        .map(str::to_owned)
        .to_vec()];
    for t in &list.tokens {
        rows.push(vec![
            t.id.to_string(),
            t.name.to_string(),
            t.scope.to_string(),
            rfc3339(t.created_at),
            t.created_by.clone(),
            state(t),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// `btrfly token revoke ID`: the token is refused from now on (by other
/// replicas of the store within seconds).
///
/// # Errors
/// An invalid or unknown id, a token already revoked, a calling token
/// without the admin scope, the server unreachable.
pub async fn revoke(args: &ServerArgs, id: &str) -> Result<ExitCode> {
    let id = TokenId::new(id)?;
    let target = connect(args, None)?;
    let info = target
        .client
        .revoke_token(&id)
        .await
        .map_err(|e| target.explain(e))?;
    eprintln!("btrfly: revoked token {} (name {})", info.id, info.name);
    Ok(ExitCode::SUCCESS)
}
