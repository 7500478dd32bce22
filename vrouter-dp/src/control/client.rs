//! Connecting to the API: over the Unix socket (or `http://host:port` when the
//! server also listens on TCP).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::proto::vrouter_client::VrouterClient;

/// A connected client.
pub type Client = VrouterClient<Channel>;

/// Connects to the API on the Unix socket `path`.
pub async fn connect(path: impl AsRef<Path>) -> Result<Client, tonic::transport::Error> {
    let path: PathBuf = path.as_ref().to_owned();
    // The URI is required by the HTTP/2 layer but not used to connect.
    let ch = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await?;
    Ok(VrouterClient::new(ch)
        .max_decoding_message_size(super::DEFAULT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(super::DEFAULT_MAX_MESSAGE_BYTES))
}
