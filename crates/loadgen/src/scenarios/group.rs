//! `group`: G groups of M members, every member online with one session; each message
//! comes from a random member of a random group (seeded). Reports deliveries per second,
//! latency to the last member (per message, the latest of its M-1 deliveries), and lost
//! and duplicated deliveries per recipient.

use super::messaging::{self, Conversation, Member, Plan};
use super::tracker::Slot;
use crate::cli::GroupArgs;
use crate::report::Report;
use crate::setup::Setup;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Runs the scenario.
pub async fn run(args: &GroupArgs) -> anyhow::Result<Report> {
    let groups = args.groups as usize;
    let size = args.members as usize;
    let total = messaging::message_count(&args.load)?;
    messaging::check_fd_room(groups * size)?;
    let setup = Setup::for_run(&args.common).await?;

    let users = setup.users(groups * size).await?;
    let specs = users
        .chunks_exact(size)
        .map(|group| {
            let others = group[1..].iter().map(|l| l.user_id).collect();
            (group[0].clone(), others)
        })
        .collect();
    let ids = setup.groups(specs).await?;
    let conversations = ids
        .into_iter()
        .enumerate()
        .map(|(g, id)| Conversation {
            id,
            members: (g * size..(g + 1) * size).collect(),
        })
        .collect();
    let members = users
        .into_iter()
        .enumerate()
        .map(|(i, login)| Member {
            login,
            conv: u32::try_from(i / size).unwrap_or(u32::MAX),
            pos: u8::try_from(i % size).unwrap_or(u8::MAX),
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(args.load.seed);
    let schedule = (0..total)
        .map(|_| Slot {
            conv: u32::try_from(rng.random_range(0..groups)).unwrap_or(0),
            sender: u8::try_from(rng.random_range(0..size)).unwrap_or(0),
        })
        .collect();
    let plan = Plan {
        conversations,
        members,
        schedule,
    };
    let outcome = messaging::run(&args.common, &args.load, &setup, plan).await?;

    let mut report = Report::new("group");
    report.count("groups", "groups", u64::from(args.groups));
    report.count("members", "members per group", u64::from(args.members));
    messaging::report(&mut report, &args.load, &outcome);
    report.latency("deliver", "send->last member", &outcome.totals.deliver_last);
    report.latency(
        "deliver_each",
        "send->each member",
        &outcome.totals.deliver_each,
    );
    messaging::report_errors(&mut report, &args.load, &outcome);
    Ok(report)
}
