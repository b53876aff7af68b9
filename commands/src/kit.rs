//! `/kit list` and `/kit install NAME`: the starter kits.

use crate::governed;
use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports};
use crate::reply::Reply;
use polity_governance::change::Change;
use polity_governance::kits;

pub fn list() -> Reply {
    let lines: Vec<String> = kits::starter_kits()
        .iter()
        .map(|k| match k.options.is_empty() {
            true => format!("{} — {}", k.name, k.description),
            false => format!("{} — {} Options: {}.", k.name, k.description, k.usage()),
        })
        .collect();
    Reply::private(format!("Starter kits (`/kit install NAME`):\n{}", lines.join("\n")))
}

pub async fn install(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    let kit = match kits::starter_kit(name) {
        Ok(k) => k,
        Err(e) => return Ok(Reply::private(e.to_string())),
    };
    let options = args.get("options").unwrap_or_default().to_string();
    if let Err(e) = kit.configured(&options) {
        return Ok(Reply::private(format!("{e}.")));
    }
    let options = options.split_whitespace().collect::<Vec<_>>().join(" ");
    let change = Change::KitInstall { kit: kit.name.clone(), options };
    let done = format!("The starter kit {} is installed: {}", kit.name, kit.description);
    governed::request(ports, inv, change, done, format!("install the starter kit {}", kit.name)).await
}
