//! The live WebSocket API's routes, one function: `$connect` (records the connection and who
//! opened it, as the authorizer found them), `$disconnect`, and a page's `subscribe`/`unsubscribe`
//! (`$default` answers any other message with an error on the socket).

use base64::Engine;
use shared::live::{self, ClientMessage, ConnectionId, Reply, SocketEvent, Viewer};
use shared::store::LiveConnectionStore;
use shared::{time, InventoryError};

/// The handler: parse, call the use case of the route, map the result (a reply for a message).
pub async fn handler(store: &impl LiveConnectionStore, event: SocketEvent) -> Result<Option<Reply>, InventoryError> {
    let connection = ConnectionId::parse(&event.request_context.connection_id)?;
    match event.request_context.route_key.as_str() {
        "$connect" => {
            let viewer = Viewer::from_authorizer_context(event.request_context.authorizer.as_ref());
            live::connect(store, &connection, &viewer, time::now()).await.map(|()| None)
        }
        "$disconnect" => live::disconnect(store, &connection).await.map(|()| None),
        _ => {
            let frame = frame_text(&event)?;
            live::on_message(store, &connection, ClientMessage::parse(&frame)?).await.map(Some)
        }
    }
}

fn frame_text(event: &SocketEvent) -> Result<String, InventoryError> {
    let raw = event.body.clone().unwrap_or_default();
    if !event.is_base64_encoded {
        return Ok(raw);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| InventoryError::invalid("message", "a message must be JSON text"))?;
    String::from_utf8(bytes).map_err(|_| InventoryError::invalid("message", "a message must be JSON text"))
}
