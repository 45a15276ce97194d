"""Sending the daily summary to the report's receiver, one of Alertmanager's
receivers in the inventory (monitoring_server_report_receiver): its
webhooks get a JSON document, its e-mail addresses a message through the
same mail relay Alertmanager uses, with the HTML page attached."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage

from ..errors import PgharborError


class DeliveryError(PgharborError):
    pass


@dataclass(frozen=True)
class Receiver:
    name: str
    webhook: list[str] = field(default_factory=list)
    email: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Smtp:
    """monitoring_server_smtp: smarthost is host:port; STARTTLS is required unless require_tls is false."""
    smarthost: str
    sender: str
    auth_username: str = ""
    auth_password: str = ""
    require_tls: bool = True


def send(receiver: Receiver, smtp: Smtp | None, subject: str, summary: str, page: str, page_name: str,
         timeout: float = 30.0) -> list[str]:
    """Send to every address of the receiver; returns where it went. Every address is tried; a failure
    is raised after the others had their turn, naming each address that failed."""
    sent, problems = [], []
    for url in receiver.webhook:
        try:
            post_webhook(url, {"receiver": receiver.name, "kind": "pgharbor-daily-report", "subject": subject,
                               "text": summary, "page": page_name}, timeout)
            sent.append(url)
        except DeliveryError as exc:
            problems.append(str(exc))
    if receiver.email:
        if smtp is None:
            problems.append(f"receiver {receiver.name} has e-mail addresses but monitoring_server_smtp is empty")
        else:
            try:
                send_mail(smtp, receiver.email, subject, summary, page, page_name, timeout)
                sent += receiver.email
            except DeliveryError as exc:
                problems.append(str(exc))
    if problems:
        raise DeliveryError("; ".join(problems) + (f" (sent to {', '.join(sent)})" if sent else ""))
    return sent


def post_webhook(url: str, document: dict, timeout: float) -> None:
    request = urllib.request.Request(url, data=json.dumps(document).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 (the inventory's receiver)
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"the report's webhook {url} did not take the summary: {exc}") from exc


def send_mail(smtp: Smtp, to: list[str], subject: str, summary: str, page: str, page_name: str,
              timeout: float) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = smtp.sender, ", ".join(to), subject
    message.set_content(summary)
    message.add_attachment(page, subtype="html", filename=page_name)
    host, _, port = smtp.smarthost.rpartition(":")
    try:
        with smtplib.SMTP(host, int(port), timeout=timeout) as client:
            client.ehlo()
            if smtp.require_tls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.auth_username:
                client.login(smtp.auth_username, smtp.auth_password)
            client.send_message(message)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        raise DeliveryError(f"the report's mail to {', '.join(to)} through {smtp.smarthost} was not sent: "
                            f"{exc}") from exc
