//! `dunning-schedule test-whatsapp <phone> <message>`: the seed's `whatsapp:test`.

use dunning_channels::{OutgoingMessage, SendError};
use dunning_core::config::WhatsAppDriver;
use dunning_core::contact::normalize_phone;
use dunning_core::{Channel, Settings};

use super::confirm::confirm;
use crate::app::UsageError;
use crate::output::Marks;

/// Sends one WhatsApp message now through the configured driver, after confirmation.
pub fn run(
    settings: &Settings,
    phone: &str,
    message: &str,
    yes: bool,
    m: Marks,
) -> anyhow::Result<()> {
    normalize_phone(phone)
        .map_err(|e| UsageError(format!("{e}; write it like 085707211646 or +6285707211646")))?;
    if message.trim().is_empty() {
        return Err(UsageError("the message is empty: write the text to send".into()).into());
    }
    let question = format!(
        "{} Ini akan mengirim WhatsApp ke {phone}. Lanjutkan?",
        m.warn
    );
    if !confirm(&question, yes)? {
        println!("Dibatalkan: tidak ada yang dikirim.");
        return Ok(());
    }
    let sender = dunning_channels::whatsapp_sender(settings).map_err(|e| failed(m, &e))?;
    println!("Mengirim WhatsApp ke: {phone}");
    println!("Pesan: {message}");
    let delivered = sender
        .send(&OutgoingMessage {
            recipient: phone,
            subject: "",
            body: message,
            reference: "test-whatsapp",
        })
        .map_err(|e| failed(m, &e))?;
    println!("{} WhatsApp berhasil dikirim!", m.ok);
    if let Some(id) = delivered.provider_message_id {
        println!("   Fonnte message id: {id}");
    }
    if settings.whatsapp == WhatsAppDriver::Log {
        println!(
            "   WHATSAPP_DRIVER=log: written to {}, not sent to WhatsApp (set WHATSAPP_DRIVER=fonnte to send)",
            settings.outbox_dir.join("whatsapp.jsonl").display()
        );
    }
    Ok(())
}

/// Prints the provider's reason and the fix; the returned error makes the exit code 1.
fn failed(m: Marks, e: &SendError) -> anyhow::Error {
    let (reason, fix) = reason_and_fix(Channel::WhatsApp, e);
    println!("{} WhatsApp gagal dikirim: {reason}", m.error);
    println!("   Fix: {fix}");
    anyhow::anyhow!("WhatsApp test message not sent: {reason}")
}

/// The provider's reason and what the operator should do about it, for a failure
/// on `channel` (the fix texts live in `dunning_channels::fix`).
pub(super) fn reason_and_fix(channel: Channel, e: &SendError) -> (String, String) {
    let reason = match e {
        SendError::ChannelWide { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    (reason, dunning_channels::fix::for_error(channel, e))
}
