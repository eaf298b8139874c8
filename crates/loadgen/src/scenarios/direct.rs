//! `direct`: P pairs of users, each user with one session and each pair one direct
//! conversation; messages alternate between pairs and directions on the open-loop
//! schedule. Reports send->ack and send->deliver latency, throughput, lost and duplicated.

use super::messaging::{self, Conversation, Member, Plan};
use super::tracker::Slot;
use crate::cli::DirectArgs;
use crate::report::Report;
use crate::setup::Setup;

/// Runs the scenario.
pub async fn run(args: &DirectArgs) -> anyhow::Result<Report> {
    let pairs = args.pairs as usize;
    let total = messaging::message_count(&args.load)?;
    messaging::check_fd_room(2 * pairs)?;
    let setup = Setup::for_run(&args.common).await?;

    let users = setup.users(2 * pairs).await?;
    let pair_list = users
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].user_id))
        .collect();
    let ids = setup.directs(pair_list).await?;
    let conversations = ids
        .into_iter()
        .enumerate()
        .map(|(k, id)| Conversation {
            id,
            members: vec![2 * k, 2 * k + 1],
        })
        .collect();
    let members = users
        .into_iter()
        .enumerate()
        .map(|(i, login)| Member {
            login,
            conv: u32::try_from(i / 2).unwrap_or(u32::MAX),
            pos: u8::from(i % 2 == 1),
        })
        .collect();
    // Message i goes to pair i % P, from its first user on even rounds, its second on odd.
    let schedule = (0..total)
        .map(|i| Slot {
            conv: u32::try_from(i % pairs as u64).unwrap_or(0),
            sender: u8::from((i / pairs as u64) % 2 == 1),
        })
        .collect();
    let plan = Plan {
        conversations,
        members,
        schedule,
    };
    let outcome = messaging::run(&args.common, &args.load, &setup, plan).await?;

    let mut report = Report::new("direct");
    report.count("pairs", "pairs", u64::from(args.pairs));
    messaging::report(&mut report, &args.load, &outcome);
    report.latency("deliver", "send->deliver", &outcome.totals.deliver_last);
    messaging::report_errors(&mut report, &args.load, &outcome);
    Ok(report)
}
