//! Where `lro` connects and with what credentials: explicit options beat the environment,
//! and whatever the environment decides is said on stderr.
//!
//! | given | endpoint | token |
//! |---|---|---|
//! | `--endpoint URL` | URL (`LRO_EMULATOR_HOST` is ignored, with a note) | as below |
//! | `LRO_EMULATOR_HOST=host:port` (not empty), no `--endpoint` | `http://host:port`, with a note | none (an explicit one is not sent, with a note) |
//! | neither | Vision's | as below |
//!
//! The token: `--token`, else `--token-command`, else `GOOGLE_OAUTH_ACCESS_TOKEN`, else, for
//! an `https://` endpoint, Application Default Credentials.

use longrunning::transport::{
    CommandToken, Connector, DEFAULT_ENDPOINT, EMULATOR_HOST_ENV, EnvToken, StaticToken, TOKEN_ENV,
};
use longrunning::{Error, OperationsClient};

use crate::args::Cli;
use crate::output::note;

/// A variable's value, if set and not blank: an empty variable is the same as unset.
fn variable(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The endpoint the options and the environment choose.
pub(crate) fn endpoint(cli: &Cli) -> String {
    match (&cli.endpoint, variable(EMULATOR_HOST_ENV)) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(host)) => format!("http://{}", host.trim_start_matches("http://")),
        (None, None) => DEFAULT_ENDPOINT.to_owned(),
    }
}

/// The client the global options (and the environment) describe.
pub(crate) async fn connect(cli: &Cli) -> Result<OperationsClient, Error> {
    let emulator = variable(EMULATOR_HOST_ENV);
    let mut connector = Connector::from_env();
    let explicit_token = cli.token.is_some() || cli.token_command.is_some();
    match (&cli.endpoint, &emulator) {
        (Some(endpoint), Some(host)) => {
            note!("lro: --endpoint {endpoint} given: {EMULATOR_HOST_ENV}={host} is ignored");
            connector = connector.endpoint(endpoint);
        }
        (Some(endpoint), None) => connector = connector.endpoint(endpoint),
        (None, Some(host)) => {
            let token = if explicit_token {
                "; the token given is not sent (emulators take none)"
            } else {
                ", with no token"
            };
            note!("lro: {EMULATOR_HOST_ENV}={host} in effect: talking to the emulator{token}");
        }
        (None, None) => {}
    }
    if cli.transport == crate::args::Wire::Rest {
        connector = connector.rest(cli.rest_rules.clone());
    }
    if let Some(proxy) = &cli.proxy {
        connector = connector.proxy(proxy);
    }
    if let Some(list) = &cli.no_proxy {
        connector = connector.no_proxy(list);
    }
    if cli.allow_plaintext_token {
        connector = connector.allow_plaintext_token(true);
    }
    if let Some(project) = &cli.quota_project {
        connector = connector.quota_project(project);
    }
    if let Some(rate) = cli.max_rps {
        connector = connector.max_rps(rate);
    }
    if let Some(path) = &cli.ca_file {
        connector = connector.ca_file(path)?;
    }
    let emulated = cli.endpoint.is_none() && emulator.is_some();
    if let Some(token) = &cli.token {
        connector = connector.token_source(StaticToken::new(token));
    } else if let Some(command) = &cli.token_command {
        connector = connector.token_source(CommandToken::shell(command));
    } else if variable(TOKEN_ENV).is_some() {
        connector = connector.token_source(EnvToken::new());
    } else if endpoint(cli).starts_with("https://") && !emulated {
        // Google's own endpoint with no token given: Application Default Credentials.
        connector =
            connector.token_source(longrunning::transport::ApplicationDefault::new().await?);
    }
    connector.connect_lazy()
}
