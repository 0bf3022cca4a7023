//! Management commands: REST calls, then tables (or `--json`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::table;
use super::{BundleCommand, CampaignCommand, Command, DeviceCommand, GroupCommand};

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(
                method,
                format!("{}/api/v1{path}", self.base.trim_end_matches('/')),
            )
            .bearer_auth(&self.token)
    }

    async fn send(&self, req: RequestBuilder) -> Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("server answered {status}: {message}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }
}

fn token(token_file: &Path) -> Result<String> {
    if let Ok(t) = std::env::var("AIRLOCK_SERVER_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let text = std::fs::read_to_string(token_file).with_context(|| {
        format!(
            "reading the admin token from {} (set --token-file or AIRLOCK_SERVER_TOKEN)",
            token_file.display()
        )
    })?;
    Ok(text.trim().to_string())
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Unix-milliseconds field as UTC time (empty when absent).
fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(t).to_string()
        })
        .unwrap_or_default()
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn pretty(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_devices(v: &Value) {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|d| {
            vec![
                s(&d["controllerId"]),
                s(&d["status"]),
                s(&d["version"]),
                s(&d["health"]["state"]),
                s(&d["health"]["failures"]),
                time(&d["lastSeenMs"]),
            ]
        })
        .collect();
    table::print(
        &[
            "DEVICE",
            "STATUS",
            "VERSION",
            "HEALTH",
            "FAILURES",
            "LAST SEEN",
        ],
        &rows,
    );
}

fn print_campaign(c: &Value) {
    println!(
        "campaign {} {:?}: {} (bundle {}, group {}, phase {} of {})",
        s(&c["id"]),
        s(&c["name"]),
        s(&c["state"]),
        s(&c["bundleId"]),
        s(&c["group"]),
        c["currentPhase"].as_i64().unwrap_or(0) + 1,
        items(&c["phases"]).len()
    );
    if let Some(r) = c["reason"].as_str() {
        println!("reason: {r}");
    }
    let rows: Vec<Vec<String>> = items(&c["progress"])
        .iter()
        .map(|p| {
            let mut row = vec![format!(
                "{} ({}%)",
                p["phase"].as_u64().unwrap_or(0) + 1,
                s(&p["percent"])
            )];
            for k in [
                "devices",
                "pending",
                "running",
                "succeeded",
                "failed",
                "canceled",
            ] {
                row.push(s(&p[k]));
            }
            row
        })
        .collect();
    table::print(
        &[
            "PHASE",
            "DEVICES",
            "PENDING",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "CANCELED",
        ],
        &rows,
    );
}

pub async fn run(server: &str, token_file: &Path, command: Command) -> Result<()> {
    let c = Client {
        base: server.to_string(),
        token: token(token_file)?,
        http: reqwest::Client::new(),
    };
    match command {
        Command::Serve(_) => unreachable!("serve is not a client command"),
        Command::Health { json } => {
            let v = c.get("/health").await?;
            if json {
                return pretty(&v);
            }
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|d| {
                    vec![
                        s(&d["controllerId"]),
                        s(&d["state"]),
                        s(&d["check"]),
                        s(&d["lastResult"]),
                        s(&d["failures"]),
                        time(&d["lastSeenMs"]),
                    ]
                })
                .collect();
            table::print(
                &[
                    "DEVICE",
                    "HEALTH",
                    "CHECK",
                    "LAST RESULT",
                    "FAILURES",
                    "LAST SEEN",
                ],
                &rows,
            );
        }
        Command::Device(cmd) => device(&c, cmd).await?,
        Command::Group(cmd) => group(&c, cmd).await?,
        Command::Bundle(cmd) => bundle(&c, cmd).await?,
        Command::Campaign(cmd) => campaign(&c, cmd).await?,
    }
    Ok(())
}

async fn device(c: &Client, cmd: DeviceCommand) -> Result<()> {
    match cmd {
        DeviceCommand::List {
            status,
            group,
            json,
        } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(g) = group {
                query.push(("group", g));
            }
            let v = c
                .send(c.request(Method::GET, "/devices").query(&query))
                .await?;
            if json { pretty(&v)? } else { print_devices(&v) }
        }
        DeviceCommand::Show { id, json } => {
            let v = c.get(&format!("/devices/{id}")).await?;
            if json {
                return pretty(&v);
            }
            println!(
                "device {} ({}): {}",
                s(&v["controllerId"]),
                s(&v["name"]),
                s(&v["status"])
            );
            println!(
                "health: {} (last check: {}); {} failed update(s); last seen {}",
                s(&v["health"]["state"]),
                s(&v["health"]["check"]),
                s(&v["health"]["failures"]),
                time(&v["lastSeenMs"])
            );
            if let Some(a) = v["currentAction"].as_object() {
                println!("current action {} ({})", s(&a["id"]), s(&a["status"]));
            }
            let rows: Vec<Vec<String>> = v["attributes"]
                .as_object()
                .map(|m| m.iter().map(|(k, val)| vec![k.clone(), s(val)]).collect())
                .unwrap_or_default();
            table::print(&["ATTRIBUTE", "VALUE"], &rows);
        }
        DeviceCommand::Add {
            controller_id,
            name,
            token,
        } => {
            let v = c
                .post(
                    "/devices",
                    json!({"controllerId": controller_id, "name": name, "token": token}),
                )
                .await?;
            println!(
                "added {} (accepted); its TargetToken: {}",
                s(&v["controllerId"]),
                s(&v["token"])
            );
        }
        DeviceCommand::Accept { id } => {
            c.post(&format!("/devices/{id}/accept"), Value::Null)
                .await?;
            println!("accepted {id}");
        }
        DeviceCommand::Reject { id } => {
            c.post(&format!("/devices/{id}/reject"), Value::Null)
                .await?;
            println!("rejected {id}");
        }
        DeviceCommand::Delete { id } => {
            c.delete(&format!("/devices/{id}")).await?;
            println!("deleted {id}");
        }
        DeviceCommand::History { id, json } => {
            let v = c.get(&format!("/devices/{id}/actions")).await?;
            if json {
                return pretty(&v);
            }
            for a in items(&v) {
                println!(
                    "action {} bundle {} {} (campaign {})",
                    s(&a["id"]),
                    s(&a["bundleId"]),
                    s(&a["status"]),
                    s(&a["campaignId"])
                );
                for l in items(&a["log"]) {
                    println!("  {}  {}", time(&l["tsMs"]), s(&l["message"]));
                }
            }
        }
    }
    Ok(())
}

async fn group(c: &Client, cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::Create {
            name,
            devices,
            filter,
        } => {
            let body = match filter {
                Some(f) => json!({"name": name, "filter": f}),
                None => json!({"name": name, "devices": devices}),
            };
            let v = c.post("/groups", body).await?;
            println!(
                "created group {} ({} members)",
                s(&v["name"]),
                items(&v["members"]).len()
            );
        }
        GroupCommand::List { json } => {
            let v = c.get("/groups").await?;
            if json {
                return pretty(&v);
            }
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|g| {
                    vec![
                        s(&g["name"]),
                        s(&g["type"]),
                        s(&g["filter"]),
                        items(&g["members"]).len().to_string(),
                    ]
                })
                .collect();
            table::print(&["GROUP", "TYPE", "FILTER", "MEMBERS"], &rows);
        }
        GroupCommand::Show { name, json } => {
            let v = c.get(&format!("/groups/{name}")).await?;
            if json {
                return pretty(&v);
            }
            println!(
                "group {} ({}{})",
                s(&v["name"]),
                s(&v["type"]),
                v["filter"]
                    .as_str()
                    .map(|f| format!(", filter {f}"))
                    .unwrap_or_default()
            );
            for m in items(&v["members"]) {
                println!("  {}", s(m));
            }
        }
        GroupCommand::Delete { name } => {
            c.delete(&format!("/groups/{name}")).await?;
            println!("deleted group {name}");
        }
    }
    Ok(())
}

async fn bundle(c: &Client, cmd: BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Upload {
            file,
            foreign,
            name,
            version,
            json,
        } => {
            let f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let len = f.metadata().await?.len();
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
            let mut query = Vec::new();
            if foreign {
                let artifact = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("{} has no UTF-8 file name", file.display()))?;
                query = vec![
                    ("artifact", artifact.to_string()),
                    ("name", name.unwrap_or_default()),
                    ("version", version.unwrap_or_default()),
                ];
            }
            let req = c
                .request(Method::POST, "/bundles")
                .query(&query)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(body);
            let v = c.send(req).await?;
            if json {
                return pretty(&v);
            }
            let what = if v["kind"] == "foreign" {
                "artifact (not verified by the server: the devices' updater must verify it)"
            } else {
                "bundle"
            };
            println!(
                "uploaded {what} {}: {} {} ({} bytes, sha256 {})",
                s(&v["id"]),
                s(&v["name"]),
                s(&v["version"]),
                s(&v["size"]),
                s(&v["sha256"])
            );
        }
        BundleCommand::List { json } => {
            let v = c.get("/bundles").await?;
            if json {
                return pretty(&v);
            }
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|b| {
                    vec![
                        s(&b["id"]),
                        s(&b["name"]),
                        s(&b["version"]),
                        s(&b["size"]),
                        items(&b["compatible"])
                            .iter()
                            .map(s)
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            table::print(&["ID", "NAME", "VERSION", "SIZE", "COMPATIBLE"], &rows);
        }
        BundleCommand::Delete { id } => {
            c.delete(&format!("/bundles/{id}")).await?;
            println!("deleted bundle {id}");
        }
    }
    Ok(())
}

async fn campaign(c: &Client, cmd: CampaignCommand) -> Result<()> {
    let v = match cmd {
        CampaignCommand::Create {
            name,
            bundle,
            group,
            phases,
            success_threshold,
            error_threshold,
            maintenance_window,
            download,
            update,
            json,
        } => {
            let mut body = json!({"name": name, "bundle": bundle, "group": group, "phases": phases,
                "successThreshold": success_threshold, "errorThreshold": error_threshold,
                "download": download, "update": update});
            if let Some(w) = maintenance_window {
                let Some((start, duration)) = w.split_once('+') else {
                    bail!(
                        "--maintenance-window {w:?} is not START+DURATION, e.g. 02:00+03:00 (UTC)"
                    );
                };
                body["maintenanceWindow"] =
                    json!({"start": start, "duration": duration, "timezone": "UTC"});
            }
            let v = c.post("/campaigns", body).await?;
            if json {
                return pretty(&v);
            }
            v
        }
        CampaignCommand::List { json } => {
            let v = c.get("/campaigns").await?;
            if json {
                return pretty(&v);
            }
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|x| {
                    let sum = |k: &str| {
                        items(&x["progress"])
                            .iter()
                            .map(|p| p[k].as_u64().unwrap_or(0))
                            .sum::<u64>()
                            .to_string()
                    };
                    vec![
                        s(&x["id"]),
                        s(&x["name"]),
                        s(&x["state"]),
                        s(&x["group"]),
                        format!(
                            "{}/{}",
                            x["currentPhase"].as_i64().unwrap_or(0) + 1,
                            items(&x["phases"]).len()
                        ),
                        sum("succeeded"),
                        sum("failed"),
                    ]
                })
                .collect();
            table::print(
                &[
                    "ID",
                    "NAME",
                    "STATE",
                    "GROUP",
                    "PHASE",
                    "SUCCEEDED",
                    "FAILED",
                ],
                &rows,
            );
            return Ok(());
        }
        CampaignCommand::Show { id, json } => {
            let v = c.get(&format!("/campaigns/{id}")).await?;
            if json {
                return pretty(&v);
            }
            v
        }
        CampaignCommand::Pause { id } => {
            c.post(&format!("/campaigns/{id}/pause"), Value::Null)
                .await?
        }
        CampaignCommand::Resume { id } => {
            c.post(&format!("/campaigns/{id}/resume"), Value::Null)
                .await?
        }
        CampaignCommand::Cancel { id } => {
            c.post(&format!("/campaigns/{id}/cancel"), Value::Null)
                .await?
        }
    };
    print_campaign(&v);
    Ok(())
}
