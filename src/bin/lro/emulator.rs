//! `lro emulator` (the fake, serving until interrupted) and `lro demo` (the fake in process,
//! a purge and an import, waited for).

use std::time::Duration;

use longrunning::Error;
use longrunning::testing::{FakeMethod, FakeServer};
use longrunning::wait::WaitOptions;

use crate::exit::Exit;
use crate::output::{Printer, note};
use crate::requests;
use crate::waiting;

/// How long the emulator's operations take at speed 1.
const EMULATED_DURATION: Duration = Duration::from_secs(10);
/// How long the demo's operations take at speed 1.
const DEMO_DURATION: Duration = Duration::from_secs(3);

/// How the emulator serves.
pub(crate) struct Emulation {
    pub(crate) listen: std::net::SocketAddr,
    pub(crate) no_wait_rpc: bool,
    pub(crate) speed: f64,
    pub(crate) spread: Duration,
}

/// Serves until Ctrl-C, then says how many RPCs of each kind it served.
pub(crate) async fn serve(printer: &Printer, emulation: &Emulation) -> Result<Exit, Error> {
    let fake = FakeServer::builder()
        .listen(emulation.listen)
        .record_requests(false)
        .start()
        .await?;
    fake.set_wait_unimplemented(emulation.no_wait_rpc);
    fake.set_operation_duration(EMULATED_DURATION.div_f64(emulation.speed));
    fake.set_operation_duration_spread(emulation.spread);
    printer.line(&format!("listening on {}", fake.addr()));
    let _ = tokio::signal::ctrl_c().await;
    // What it served, for measuring a client's RPCs per operation.
    let served: Vec<String> = FakeMethod::ALL
        .iter()
        .filter_map(|&method| {
            let calls = fake.calls(method);
            (calls > 0).then(|| format!("{} {calls}", method.name()))
        })
        .collect();
    note!("served {} RPCs: {}", fake.total_calls(), served.join(", "));
    fake.shutdown().await;
    Ok(Exit::Success)
}

/// The README's main command: the emulator in process, a purge and an import, waited for
/// with progress, their final JSON printed.
pub(crate) async fn demo(printer: &Printer, quiet: bool, speed: f64) -> Result<Exit, Error> {
    let fake = FakeServer::builder().record_requests(false).start().await?;
    fake.set_operation_duration(DEMO_DURATION.div_f64(speed));
    if !quiet {
        note!("demo: emulator listening on {}", fake.addr());
    }
    let client = fake.client();
    let parent = "projects/demo-project/locations/us-west1";
    let purge = requests::purge(parent, Some("demo-product-set"), true)
        .start(&client)
        .await?;
    let import = requests::import(parent, "gs://demo-bucket/product-sets.csv")
        .start(&client)
        .await?;
    if !quiet {
        note!(
            "demo: started {} (purge) and {} (import)",
            purge.name,
            import.name
        );
    }
    let names = vec![purge.name, import.name];
    let exit = waiting::wait(
        &client,
        printer,
        names,
        &WaitOptions::default(),
        quiet,
        None,
    )
    .await;
    fake.shutdown().await;
    exit
}
