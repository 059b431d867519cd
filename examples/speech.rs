//! Another Google API's long-running operation through the generic start call: Speech v1
//! `LongRunningRecognize`, against the in-process fake.
//!
//! `cargo run --features testing --example speech`

use std::time::Duration;

use futures_util::StreamExt;
use longrunning::StartCall;
use longrunning::proto::speech;
use longrunning::testing::FakeServer;
use longrunning::wait::{Progress, WaitOptions};
use longrunning::{Operation, RetryPolicy};

type RecognizeOperation =
    Operation<speech::LongRunningRecognizeResponse, speech::LongRunningRecognizeMetadata>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::start().await?;
    fake.set_operation_duration(Duration::from_secs(2));
    let client = fake.client();

    // Path, routing parameters and retries of the call: all the crate needs to know.
    let call = StartCall::new("/google.cloud.speech.v1.Speech/LongRunningRecognize")
        .retry_policy(RetryPolicy::no_retries(Duration::from_secs(60)));
    let request = speech::LongRunningRecognizeRequest {
        config: Some(speech::RecognitionConfig {
            language_code: "en-US".into(),
            ..Default::default()
        }),
        audio: Some(speech::RecognitionAudio {
            audio_source: Some(speech::recognition_audio::AudioSource::Uri(
                "gs://my-bucket/meeting.flac".into(),
            )),
        }),
        output_config: None,
    };
    let op: RecognizeOperation = client.start(&call, request).await?;
    println!("started {}", op.name());

    let mut progress = op.watch(&WaitOptions::default()).boxed();
    while let Some(report) = progress.next().await {
        match report? {
            Progress::Running { metadata } => {
                let percent = metadata.map_or(0, |m| m.progress_percent);
                println!("{percent:>3} %");
            }
            Progress::Done { response, .. } => {
                for result in &response.results {
                    if let Some(best) = result.alternatives.first() {
                        println!(
                            "transcript: {:?} ({:.0} %)",
                            best.transcript,
                            best.confidence * 100.0
                        );
                    }
                }
            }
        }
    }
    fake.shutdown().await;
    Ok(())
}
