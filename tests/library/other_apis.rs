//! Another Google API's long-running operations (Speech v1 `LongRunningRecognize`), started,
//! watched, waited for, resumed and decoded through the generic start call: nothing in the
//! crate knows Speech beyond its generated types.

use std::time::Duration;

use futures_util::StreamExt;
use longrunning::StartCall;
use longrunning::proto::speech;
use longrunning::testing::{FakeMethod, FakeServer};
use longrunning::wait::{Progress, WaitOptions, WaitStrategy};
use longrunning::{Operation, RetryPolicy};

type RecognizeOperation =
    Operation<speech::LongRunningRecognizeResponse, speech::LongRunningRecognizeMetadata>;

fn request() -> speech::LongRunningRecognizeRequest {
    speech::LongRunningRecognizeRequest {
        config: Some(speech::RecognitionConfig {
            language_code: "en-US".into(),
            ..Default::default()
        }),
        audio: Some(speech::RecognitionAudio {
            audio_source: Some(speech::recognition_audio::AudioSource::Uri(
                "gs://bucket/audio.flac".into(),
            )),
        }),
        output_config: None,
    }
}

fn recognize() -> StartCall {
    StartCall::new("/google.cloud.speech.v1.Speech/LongRunningRecognize")
        .retry_policy(RetryPolicy::no_retries(Duration::from_secs(60)))
}

#[tokio::test(start_paused = true)]
async fn speech_starts_watches_waits_and_decodes_through_the_generic_call() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_secs(20));
    let client = fake.client();
    let op: RecognizeOperation = client.start(&recognize(), request()).await.unwrap();
    // Speech names operations by a bare number: names are opaque.
    assert!(!op.name().contains('/'), "{}", op.name());
    assert_eq!(op.metadata().unwrap().unwrap().progress_percent, 0);

    // Progress through the typed watch: 0 %, 50 %, then the response.
    let options = WaitOptions {
        strategy: WaitStrategy::Poll,
        ..WaitOptions::default()
    };
    let reports: Vec<_> = op.clone().watch(&options).collect().await;
    let progress: Vec<i32> = reports
        .iter()
        .map(|report| match report.as_ref().unwrap() {
            Progress::Running { metadata } | Progress::Done { metadata, .. } => {
                metadata.as_ref().unwrap().progress_percent
            }
        })
        .collect();
    assert_eq!(progress, [0, 50, 100]);

    // Waited for and decoded, and resumed by name into the same typed handle.
    let mut op = op;
    let response = op.wait(&WaitOptions::default()).await.unwrap();
    assert_eq!(
        response.results[0].alternatives[0].transcript,
        "hello from the fake"
    );
    let resumed = RecognizeOperation::resume(&client, op.name())
        .await
        .unwrap();
    assert_eq!(resumed.result().unwrap(), response);
    assert_eq!(fake.calls(FakeMethod::LongRunningRecognize), 1);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_generated_client_of_another_api_shares_the_transport_and_the_operation_type() {
    use longrunning::proto::speech::speech_client::SpeechClient;

    let fake = FakeServer::start().await.unwrap();
    let transport = fake.connector().transport().unwrap();
    // The generated Speech client answers with the very `Operation` type the waiter takes.
    let raw = SpeechClient::new(transport.clone())
        .long_running_recognize(request())
        .await
        .unwrap()
        .into_inner();
    let operations = longrunning::OperationsClient::from_transport(transport);
    let mut op = RecognizeOperation::from_raw(operations, raw);
    let response = op.wait(&WaitOptions::default()).await.unwrap();
    assert_eq!(response.results.len(), 1);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn on_the_wait_path_watch_shows_progress_at_the_watch_interval() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_secs(20));
    let client = fake.client();
    let op: RecognizeOperation = client.start(&recognize(), request()).await.unwrap();
    let options = WaitOptions {
        watch_interval: Duration::from_secs(4),
        ..WaitOptions::default()
    };
    let progress: Vec<i32> = op
        .watch(&options)
        .map(|report| match report.unwrap() {
            Progress::Running { metadata } | Progress::Done { metadata, .. } => {
                metadata.unwrap().progress_percent
            }
        })
        .collect()
        .await;
    // The 50 % step (from 10 s) shows although no WaitOperation runs to the end.
    assert_eq!(progress, [0, 50, 100]);
    // One WaitOperation per 4 s of a 20 s operation, no polling.
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 5);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    fake.shutdown().await;
}
