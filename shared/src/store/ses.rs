//! The SES (v2) adapter: shoppers' back-in-stock e-mails, one SendEmail per recipient (each mail
//! has its own unsubscribe link). The client makes one attempt per mail (see `entrypoint`), so SES
//! never gets a mail twice from an SDK retry; what a failure means is decided here.

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader};

use super::Mailer;
use crate::back_in_stock::{EmailAddress, MailFailure};
use crate::error::InventoryError;

/// Error codes of SES that mean "not now": the mail was not sent, try again later.
const RETRYABLE_CODES: &[&str] = &["TooManyRequestsException", "LimitExceededException", "ThrottlingException"];

#[derive(Clone, Debug)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: EmailAddress,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: EmailAddress) -> Self {
        Self { client, from }
    }
}

fn content(text: &str) -> Result<Content, MailFailure> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|err| MailFailure::NotSent(InventoryError::internal(format!("building an e-mail: {err}"))))
}

/// What a failed SendEmail means. Only SES's error code is kept: its message may quote the address.
fn failure<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> MailFailure {
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            let detail = format!("SES answered {code}");
            if code == "BadRequestException" {
                MailFailure::Rejected(InventoryError::internal(detail))
            } else if RETRYABLE_CODES.contains(&code.as_str()) {
                MailFailure::NotSent(InventoryError::Unavailable { detail })
            } else {
                MailFailure::NotSent(InventoryError::internal(detail))
            }
        }
        SdkError::ConstructionFailure(_) => {
            MailFailure::NotSent(InventoryError::internal("SES request could not be built"))
        }
        // No answer: SES may have taken the mail.
        _ => MailFailure::MaybeSent(InventoryError::Unavailable { detail: "SES did not answer".to_owned() }),
    }
}

#[async_trait::async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &crate::back_in_stock::Email) -> Result<(), MailFailure> {
        let unsubscribe = MessageHeader::builder()
            .name("List-Unsubscribe")
            .value(format!("<{}>", email.unsubscribe_url))
            .build()
            .map_err(|err| MailFailure::NotSent(InventoryError::internal(format!("building an e-mail: {err}"))))?;
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).build())
            .headers(unsubscribe)
            .build();
        self.client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(failure)?;
        Ok(())
    }
}
