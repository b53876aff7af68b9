//! `/export [json|csv]`: the governance record as a file.

use crate::parse::Parsed;
use crate::ports::{PortError, Ports};
use crate::reply::{Attachment, Reply};

pub async fn run(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let csv = args.get("format") == Some("csv");
    let content = ports.export(csv).await?;
    let name = if csv { "polity-export.csv" } else { "polity-export.json" };
    let mut reply = Reply::private(format!("The governance record ({name}):"));
    reply.attachment = Some(Attachment { name: name.into(), content });
    Ok(reply)
}
