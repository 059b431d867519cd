//! The command line: options, commands, and the checks on their values.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use longrunning::rest::RestRules;
use longrunning::wait::WaitStrategy;
use longrunning::{Error, OperationName};

/// Vision's locations, the only ones `--location` and `--parent` accept.
pub(crate) const VISION_LOCATIONS: [&str; 4] =
    ["us-west1", "us-east1", "europe-west1", "asia-east1"];

/// Get, list, wait for, cancel and delete Google Cloud long-running operations over gRPC.
#[derive(Debug, Parser)]
#[command(name = "lro", version, about, long_about, after_help = crate::exit::TABLE)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Cli {
    /// The service endpoint (default `https://vision.googleapis.com`); http:// for emulators.
    /// Without it, LRO_EMULATOR_HOST=host:port (if set and not empty) chooses an emulator.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,

    /// An OAuth2 access token (else --token-command, GOOGLE_OAUTH_ACCESS_TOKEN, or
    /// Application Default Credentials for https endpoints).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        conflicts_with = "token_command"
    )]
    pub token: Option<String>,

    /// A command that prints an access token, e.g. "gcloud auth print-access-token".
    #[arg(long, global = true, value_name = "CMD")]
    pub token_command: Option<String>,

    /// Reach the endpoint through this HTTP CONNECT proxy, `http://[user:password@]host:port`
    /// (else grpc_proxy, then https_proxy or http_proxy by the endpoint's scheme).
    #[arg(long, global = true, value_name = "URL")]
    pub proxy: Option<String>,

    /// Endpoints that go direct whatever the proxy: host names, .domain suffixes, IPs, CIDR
    /// ranges or *, comma-separated (else no_proxy). Loopback is not exempt unless listed.
    #[arg(long, global = true, value_name = "LIST")]
    pub no_proxy: Option<String>,

    /// Send the access token over plaintext http:// to a host that is not this machine
    /// (anyone on the path can read it: only on networks you trust).
    #[arg(long, global = true)]
    pub allow_plaintext_token: bool,

    /// The project billed for quota (sent as x-goog-user-project).
    #[arg(long, global = true, value_name = "P")]
    pub quota_project: Option<String>,

    /// At most N RPCs per second, shared by every wait, poll, listing and retry; halved for
    /// a while after a quota error.
    #[arg(long, global = true, value_name = "N", value_parser = parse_rate)]
    pub max_rps: Option<f64>,

    /// Also render the types of this encoded FileDescriptorSet (e.g. another API's, from
    /// `protoc --include_imports --descriptor_set_out`) as JSON. Repeatable.
    #[arg(long, global = true, value_name = "FILE")]
    pub descriptor_set: Vec<std::path::PathBuf>,

    /// Also trust the CA certificates in this PEM file (a company proxy's, a test server's).
    /// SSL_CERT_FILE and SSL_CERT_DIR name other system stores.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,

    /// Lets NAME be a bare operation ID, expanded to locations/L/operations/ID.
    #[arg(long, global = true, value_name = "L", value_parser = parse_location)]
    pub location: Option<String>,

    /// The wire: gRPC, or REST (HTTP/JSON) by --rest-rules.
    #[arg(long, global = true, value_enum, default_value_t = Wire::Grpc)]
    pub transport: Wire,

    /// Google's HTTP rules for --transport rest: vision-v1 (GetOperation only, as Vision binds
    /// it), speech-v1, or standard-VERSION (all five methods under /VERSION/, e.g. standard-v2).
    #[arg(long, global = true, value_name = "RULES", default_value = "vision-v1", value_parser = parse_rest_rules)]
    pub rest_rules: RestRules,

    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,

    /// No progress on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The connection options given on the command line (which `emulator` and `demo`, which
/// connect nowhere, refuse rather than ignore).
pub(crate) fn connection_options(cli: &Cli) -> Vec<&'static str> {
    let given = [
        ("--endpoint", cli.endpoint.is_some()),
        ("--token", cli.token.is_some()),
        ("--token-command", cli.token_command.is_some()),
        ("--proxy", cli.proxy.is_some()),
        ("--no-proxy", cli.no_proxy.is_some()),
        ("--allow-plaintext-token", cli.allow_plaintext_token),
        ("--quota-project", cli.quota_project.is_some()),
        ("--max-rps", cli.max_rps.is_some()),
        ("--ca-file", cli.ca_file.is_some()),
        ("--location", cli.location.is_some()),
        ("--transport rest", cli.transport == Wire::Rest),
    ];
    given
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect()
}

/// Which wire `lro` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Wire {
    /// gRPC over HTTP/2.
    Grpc,
    /// REST: HTTP/JSON by --rest-rules.
    Rest,
}

/// `vision-v1`, `speech-v1` or `standard-VERSION`.
fn parse_rest_rules(text: &str) -> Result<RestRules, String> {
    match text {
        "vision-v1" => Ok(RestRules::vision_v1()),
        "speech-v1" => Ok(RestRules::speech_v1()),
        _ => match text.strip_prefix("standard-") {
            Some(version) => RestRules::standard(version),
            None => Err(
                "expected vision-v1, speech-v1 or standard-VERSION (e.g. standard-v2)".to_owned(),
            ),
        },
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Proto3 JSON, as Google's REST API returns it.
    Json,
    /// A short human summary.
    Text,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print an operation.
    Get {
        /// projects/P/locations/L/operations/ID, locations/L/operations/ID, or an ID with --location.
        name: String,
    },
    /// List the operations under a parent, following pages.
    List {
        /// e.g. projects/P/locations/L.
        parent: String,
        /// The server's filter expression.
        #[arg(long, default_value = "")]
        filter: String,
        /// Operations per page (the server's default if unset).
        #[arg(long, value_name = "N")]
        page_size: Option<u32>,
        /// Stop after N operations or N pages, whichever comes first (then nextPageToken is
        /// printed: give it to --page-token to resume). At least 1.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Resume a listing where --limit stopped it (its nextPageToken).
        #[arg(long, value_name = "TOKEN", default_value = "")]
        page_token: String,
    },
    /// Wait for operations to finish, all at once; print each final operation.
    Wait {
        /// Operation names (or IDs with --location).
        names: Vec<String>,
        /// Also read names from a file, one per line ("-" for stdin).
        #[arg(long, value_name = "F")]
        from_file: Option<String>,
        /// Give up after this long (e.g. 90s, 15m, 2h); the default is 24h. 0 looks once.
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        timeout: Option<HumanDuration>,
        /// Send CancelOperation when the timeout passes, and report the outcome.
        #[arg(long)]
        cancel_on_timeout: bool,
        /// Say on stderr when an operation's metadata has not changed for this long.
        #[arg(long, value_name = "DURATION", default_value = "10m")]
        stall_after: HumanDuration,
        /// WaitOperation with polling fallback, WaitOperation only, or polling only.
        #[arg(long, value_enum, default_value_t = StrategyArg::Auto)]
        strategy: StrategyArg,
    },
    /// Ask the server to cancel an operation (best effort).
    Cancel {
        /// The operation.
        name: String,
    },
    /// Forget an operation's result (does not cancel it).
    Delete {
        /// The operation.
        name: String,
    },
    /// Start Vision batch jobs.
    #[command(subcommand)]
    Vision(VisionCommand),
    /// Serve the in-process fake as a standalone emulator until interrupted.
    Emulator {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: SocketAddr,
        /// Answer WaitOperation with UNIMPLEMENTED, as many Google services do.
        #[arg(long)]
        no_wait_rpc: bool,
        /// Run operations X times faster than their usual 10 s.
        #[arg(long, default_value = "1", value_name = "X")]
        speed: Speed,
        /// Make each operation take a uniformly random extra of up to S seconds (after
        /// --speed), so that a batch finishes spread out.
        #[arg(long, default_value = "0", value_name = "S")]
        spread: Spread,
    },
    /// Start the emulator in process, run a purge and an import, wait, print the result.
    Demo {
        /// Run the operations X times faster than their usual 3 s.
        #[arg(long, default_value = "1", value_name = "X")]
        speed: Speed,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum VisionCommand {
    /// ImportProductSets from a CSV in Cloud Storage.
    Import {
        /// projects/P/locations/L
        #[arg(long)]
        parent: String,
        /// gs://bucket/file.csv
        #[arg(long)]
        csv_uri: String,
        #[command(flatten)]
        waiting: VisionWait,
    },
    /// PurgeProducts of a product set, or the orphan products.
    #[command(group(ArgGroup::new("target").required(true).args(["product_set_id", "orphans"])))]
    Purge {
        /// projects/P/locations/L
        #[arg(long)]
        parent: String,
        /// Purge the products of this product set.
        #[arg(long, value_name = "ID")]
        product_set_id: Option<String>,
        /// Purge the products that belong to no product set.
        #[arg(long)]
        orphans: bool,
        /// Actually delete (without it the server does a dry run).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        waiting: VisionWait,
    },
    /// AsyncBatchAnnotateFiles from a request in proto3 JSON.
    AnnotateFiles {
        /// The AsyncBatchAnnotateFilesRequest as JSON ("-" for stdin).
        #[arg(long, value_name = "REQ.json")]
        request_file: String,
        #[command(flatten)]
        waiting: VisionWait,
    },
}

/// Whether a `vision` command waits for the operation it starts, and how long.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct VisionWait {
    /// Wait for it (the name is said on stderr at once) and print the finished operation.
    #[arg(long)]
    pub(crate) wait: bool,
    /// With --wait: give up after this long (e.g. 90s, 15m, 2h; default 24h).
    #[arg(
        long,
        value_name = "DURATION",
        allow_hyphen_values = true,
        requires = "wait"
    )]
    pub(crate) timeout: Option<HumanDuration>,
}

impl VisionCommand {
    /// Whether and how long to wait.
    pub(crate) fn waiting(&self) -> &VisionWait {
        match self {
            VisionCommand::Import { waiting, .. }
            | VisionCommand::Purge { waiting, .. }
            | VisionCommand::AnnotateFiles { waiting, .. } => waiting,
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "bad rate {text:?}: a number of requests per second above 0"
        )),
    }
}

/// A location: one path segment. Whether it is one of Vision's is checked where the
/// endpoint is known ([`check_location`]).
fn parse_location(location: &str) -> Result<String, String> {
    if location.is_empty() || location.contains('/') || location.contains(char::is_whitespace) {
        return Err(format!(
            "bad location {location:?}: one path segment, e.g. us-west1"
        ));
    }
    Ok(location.to_owned())
}

/// Vision's endpoint takes only Vision's locations; other endpoints any.
pub(crate) fn check_location(location: &str, endpoint: &str) -> Result<(), Error> {
    let vision = endpoint.contains("vision.googleapis.com");
    if vision && !VISION_LOCATIONS.contains(&location) {
        return Err(Error::InvalidArgument(unknown_location(location)));
    }
    Ok(())
}

/// Whether `location` is one of Vision's.
fn vision_location(location: &str) -> Result<(), String> {
    if VISION_LOCATIONS.contains(&location) {
        Ok(())
    } else {
        Err(unknown_location(location))
    }
}

fn unknown_location(location: &str) -> String {
    format!(
        "unknown location {location:?}; Vision's locations are {}",
        VISION_LOCATIONS.join(", ")
    )
}

/// A full operation name, or a bare ID expanded with `--location`.
pub(crate) fn operation_name(name: &str, location: Option<&str>) -> Result<String, Error> {
    if name.contains('/') {
        return Ok(OperationName::parse(name)?.into());
    }
    match location {
        Some(location) => Ok(OperationName::in_location(location, name)?.into()),
        None => Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "a bare operation ID needs --location (or give the full name)".into(),
        }),
    }
}

/// Checks a Vision parent, `projects/P/locations/L` with a Vision location.
pub(crate) fn check_parent(parent: &str) -> Result<(), Error> {
    let parent = longrunning::LocationName::parse(parent).map_err(|_| {
        Error::InvalidArgument(format!(
            "--parent {parent:?} is not of the form projects/P/locations/L"
        ))
    })?;
    vision_location(parent.location()).map_err(Error::InvalidArgument)
}

/// The text of a file, or of stdin for "-".
pub(crate) fn read_input(path: &str) -> Result<String, Error> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| Error::InvalidArgument(format!("cannot read {path}: {e}")))
}

/// Operation names from a file: what other `lro` commands print (one JSON operation, one
/// per line, a listing's `{"operations": [...]}`, or `--output text list` lines), or plain
/// names one per line (blank lines and `#` comments skipped).
pub(crate) fn names_from_file(path: &str) -> Result<Vec<String>, Error> {
    let text = read_input(path)?;
    if let Some(names) = names_from_json(&text) {
        return Ok(names);
    }
    // A line's first field: `lro --output text list` prints a name, a tab and its state.
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The operation names in JSON documents as `lro` prints them; `None` if the text is not
/// such JSON.
fn names_from_json(text: &str) -> Option<Vec<String>> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') && !trimmed.starts_with('[') {
        return None;
    }
    let mut names = Vec::new();
    for document in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        collect_names(&document.ok()?, &mut names)?;
    }
    Some(names)
}

fn collect_names(value: &serde_json::Value, names: &mut Vec<String>) -> Option<()> {
    match value {
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| collect_names(v, names)),
        serde_json::Value::Object(object) => {
            if let Some(operations) = object.get("operations") {
                return collect_names(operations, names);
            }
            names.push(object.get("name")?.as_str()?.to_owned());
            Some(())
        }
        _ => None,
    }
}

/// A duration such as `90s`, `15m`, `1h30m`, `500ms` or `2d`; a bare number is seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("bad duration {text:?} (try 90s, 15m, 1h30m)");
        if text.is_empty() {
            return Err(bad());
        }
        if text.starts_with('-') {
            return Err(format!(
                "bad duration {text:?}: a duration cannot be negative"
            ));
        }
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(HumanDuration(Duration::from_secs(seconds)));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            let unit_len = rest[digits..]
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len() - digits);
            let unit = &rest[digits..digits + unit_len];
            let one = match unit {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                "d" => Duration::from_secs(86400),
                _ => return Err(bad()),
            };
            let part = one
                .checked_mul(u32::try_from(number).map_err(|_| bad())?)
                .ok_or_else(bad)?;
            total = total.checked_add(part).ok_or_else(bad)?;
            rest = &rest[digits + unit_len..];
        }
        Ok(HumanDuration(total))
    }
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StrategyArg {
    /// WaitOperation, falling back to polling when the server lacks it.
    Auto,
    /// WaitOperation only.
    Wait,
    /// GetOperation polling only.
    Poll,
}

impl From<StrategyArg> for WaitStrategy {
    fn from(strategy: StrategyArg) -> Self {
        match strategy {
            StrategyArg::Auto => WaitStrategy::Auto,
            StrategyArg::Wait => WaitStrategy::Wait,
            StrategyArg::Poll => WaitStrategy::Poll,
        }
    }
}

/// `--speed X`: a finite number above zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Speed(pub f64);

impl FromStr for Speed {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(speed) if speed.is_finite() && speed > 0.0 && speed <= 1e6 => Ok(Speed(speed)),
            _ => Err(format!(
                "bad speed {text:?}: give a number above 0, e.g. 10"
            )),
        }
    }
}

/// `--spread S`: seconds, a finite number from 0 up to a day.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread(pub Duration);

impl FromStr for Spread {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(seconds) if seconds.is_finite() && (0.0..=86_400.0).contains(&seconds) => {
                Ok(Spread(Duration::from_secs_f64(seconds)))
            }
            _ => Err(format!(
                "bad spread {text:?}: give seconds from 0 to 86400, e.g. 8"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit_and_bad_ones_are_refused() {
        let cases = [
            ("90", 90_000),
            ("90s", 90_000),
            ("15m", 900_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2d", 172_800_000),
            ("1m1s1ms", 61_001),
        ];
        for (text, millis) in cases {
            assert_eq!(
                text.parse::<HumanDuration>().unwrap().0,
                Duration::from_millis(millis),
                "{text}"
            );
        }
        for bad in ["", "s", "5x", "1.5h", "-3s", "99999999999999999999d", "h5"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bare_ids_need_a_location() {
        assert_eq!(
            operation_name("bc4e", Some("us-west1")).unwrap(),
            "locations/us-west1/operations/bc4e"
        );
        assert!(operation_name("bc4e", None).is_err());
        let vision = longrunning::transport::DEFAULT_ENDPOINT;
        let err = check_location("mars-north1", vision).unwrap_err();
        assert!(err.to_string().contains("us-west1, us-east1"), "{err}");
        assert!(check_location("mars-north1", "https://speech.googleapis.com").is_ok());
        assert!(check_location("us-west1", vision).is_ok());
        assert!(parse_location("a/b").is_err());
        assert!(parse_location("europe-west4").is_ok());
        assert!(check_parent("projects/p/locations/us-east1").is_ok());
        assert!(check_parent("projects/p/locations/moon").is_err());
        assert!(check_parent("p").is_err());
    }
}
