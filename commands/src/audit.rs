//! `/audit [N]`: the latest lines of the governance record.

use crate::parse::Parsed;
use crate::ports::{PortError, Ports};
use crate::reply::Reply;

pub async fn run(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let count = args.get("count").and_then(|c| c.parse().ok()).unwrap_or(20u64).clamp(1, 200);
    let mut lines = ports.audit(count).await?;
    if lines.is_empty() {
        return Ok(Reply::private("The record is empty."));
    }
    lines.reverse();
    let text: Vec<String> =
        lines.iter().map(|l| format!("{} {}", l.at.format("%Y-%m-%d %H:%M:%S UTC"), l.text)).collect();
    Ok(Reply::private(text.join("\n")))
}
