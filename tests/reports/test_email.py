"""The daily e-mail, delivered through a real SMTP server (aiosmtpd on 127.0.0.1).

Two servers: a plain relay, and one that requires STARTTLS (a self-signed certificate made here)
and AUTH LOGIN before it accepts mail. The summary comes from a small simulated plant loaded
into a DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import re
import socket
import ssl
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from workbench.config import Settings
from workbench.reports import (
    MailError,
    ReportResult,
    compose_daily_email,
    deliver,
    external_urls,
)
from workbench.reports.charts import STATUS_COLOURS

SENDER = "Plant workbench <workbench@plant.example>"
RECIPIENTS = ["manager@plant.example", "quality@plant.example"]
REPORT_URL = "https://reports.plant.example/daily_report/2026-11-04/index.html"
USER, PASSWORD = "workbench", "s3cret-pw"
# The e-mail's band colours (text, background) per status, as the HTML must show them.
BAND_BACKGROUND = {"good": "#dcfce7", "watch": "#fef3c7", "poor": "#fee2e2", "no plan": "#f3f4f6"}


# -- a real SMTP server -----------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Store:
    """aiosmtpd handler that keeps what it receives."""

    messages: list[Received] = field(default_factory=list)
    mechanisms: list[str] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                      session.ssl is not None, login))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (also its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Server:
    host: str
    port: int
    store: Store
    cert: Path | None = None

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {"smtp_host": self.host, "smtp_port": self.port, "smtp_starttls": False}
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """A plain SMTP relay (no TLS, no AUTH)."""
    store = Store()
    controller = Controller(store, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield Server("127.0.0.1", controller.port, store)
    finally:
        controller.stop()


@pytest.fixture
def secure_smtp_server(tmp_path: Path) -> Iterator[Server]:
    """Requires STARTTLS before anything and AUTH (LOGIN only offered) before MAIL."""
    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    store = Store()

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        store.mechanisms.append(mechanism)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        # handled=False: aiosmtpd itself answers a failure with 535
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    controller = Controller(store, hostname="127.0.0.1", port=_free_port(), tls_context=tls,
                            require_starttls=True, auth_required=True, auth_require_tls=True,
                            auth_exclude_mechanism=["PLAIN"], authenticator=authenticator)
    controller.start()
    try:
        yield Server("127.0.0.1", controller.port, store, cert)
    finally:
        controller.stop()


# -- helpers ----------------------------------------------------------------------------------

def _parts(msg: EmailMessage) -> list[EmailMessage]:
    return list(msg.walk())  # type: ignore[arg-type]


def _html(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


def _text(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def _expected_headline(summary) -> str:
    # Written out here rather than taken from summary.headline, so a change of format is noticed.
    return f"Plant OEE {summary.plant['oee'] * 100:.1f}% — {summary.day:%a %d %b %Y}"


def _check_structure(msg: EmailMessage) -> None:
    """multipart/alternative with text/plain and a multipart/related HTML part whose every cid:
    resolves to an attached image/png; no script, no external URL but the report link."""
    alternative = next(p for p in _parts(msg) if p.get_content_type() == "multipart/alternative")
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    assert kinds == ["text/plain", "multipart/related"], kinds
    related = list(alternative.iter_parts())[1]
    inner = list(related.iter_parts())
    assert inner[0].get_content_type() == "text/html"
    images = {p["Content-ID"].strip("<>"): p for p in inner[1:]}
    html = _html(msg)
    cids = re.findall(r"""src=["']cid:([^"']+)["']""", html)
    assert len(cids) >= 2
    for cid in cids:
        assert cid in images, f"cid:{cid} has no part"
        part = images[cid]
        assert part.get_content_type() == "image/png"
        assert part.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    assert "<script" not in html.lower()
    assert "<style" not in html.lower()  # inline CSS only
    urls = {u for _, _, u in external_urls(html)}
    assert urls <= {REPORT_URL}, urls
    assert not re.search(r"""src=["'](?!cid:)""", html), "images must be cid: parts"


# -- tests ------------------------------------------------------------------------------------

def test_daily_email_through_smtp(smtp_server: Server, daily_summary, tmp_path: Path) -> None:
    s = daily_summary
    msg = compose_daily_email(s, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS, subject_prefix="[PLANT1]")
    result = deliver(msg, settings=smtp_server.settings(), outbox=tmp_path / "outbox")
    assert result.method == "smtp" and result.message_id == msg["Message-ID"] and result.refused == ()
    assert not (tmp_path / "outbox").exists()

    assert len(smtp_server.store.messages) == 1
    got = smtp_server.store.messages[0]
    assert got.mail_from == "workbench@plant.example" and sorted(got.rcpt_tos) == sorted(RECIPIENTS)
    received = got.message
    assert received["Subject"] == f"[PLANT1] {_expected_headline(s)}"
    assert "WARNING" not in received["Subject"] and "⚠" not in received["Subject"]
    assert received.get_content_type() == "multipart/alternative"  # nothing attached with a URL
    _check_structure(received)

    html, text = _html(received), _text(received)
    assert f'href="{REPORT_URL}"' in html and REPORT_URL in text
    assert 'data-wb="warnings"' not in html and "WARNINGS" not in text
    assert 'data-wb="no-data"' not in html and "No production data" not in text  # a day with data
    plant_oee = f"{s.plant['oee']:.1%}"
    assert plant_oee in html and plant_oee in text
    # OEE per machine, each coloured by the summary's own status band
    for row in s.machines.itertuples():
        oee = f"{row.oee:.1%}"
        tr = next(t for t in re.findall(r"<tr>.*?</tr>", html, re.S) if f">{row.machine_id}<" in t)
        cell = re.search(r'<td style="([^"]*)">' + re.escape(oee) + "</td>", tr)
        assert cell and f"background:{BAND_BACKGROUND[row.status]}" in cell.group(1), (row.machine_id, tr)
        assert row.machine_id in text and oee in text
    assert f"good ≥ {s.thresholds[0]:.0%}" in html
    for row in s.downtime_top.itertuples():
        assert row.reason_category in html and row.reason_category in text
        assert f"{row.minutes:,.0f}" in html and f"{row.minutes:,.0f}" in text
    for row in s.scrap_top.itertuples():
        assert row.scrap_category in html and f"{row.cost:,.2f}" in html and f"{row.cost:,.2f}" in text
    episodes = s.spc_episodes
    assert not episodes.empty  # the simulated day has process shifts
    assert "SPC: out-of-control episodes, most consequential first" in html
    # the e-mail lists the episodes in the summary's (ranked) order, with Cpk at their worst
    table = html[html.index("SPC: out-of-control episodes"):]
    at = 0
    for row in episodes.head(10).itertuples():
        cpk = f">{row.cpk:.2f}</td>" if not pd.isna(row.cpk) else ">–</td>"
        found = table.find(cpk, at)
        assert found >= 0 and row.characteristic in html and row.rules in text, (row, table[at:at + 400])
        at = found
    if len(episodes) > 10:
        assert f"… and {len(episodes) - 10} more episodes of lower consequence." in html


def test_a_summary_kept_before_episodes_lists_its_violations_by_series(daily_summary) -> None:
    import dataclasses

    from workbench.summary import EPISODE_COLUMNS

    old = dataclasses.replace(daily_summary, spc_episodes=pd.DataFrame(columns=EPISODE_COLUMNS))
    assert not old.spc_violations.empty
    msg = compose_daily_email(old, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS)
    text = _text(msg)
    top = old.spc_by_series.iloc[0]
    assert "Violations" in text and f"{top.machine_id}" in text and str(top.rules) in text
    more = len(old.spc_by_series) - 10
    if more > 0:
        assert f"... and {more} more series." in text


def test_warnings_show_in_a_box_and_tag_the_subject(smtp_server: Server, daily_summary, tmp_path: Path) -> None:
    warning = "Report section 'spc' failed: KeyError: 'od_diameter'"
    msg = compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[warning],
                              sender=SENDER, recipients=RECIPIENTS)
    deliver(msg, settings=smtp_server.settings(), outbox=tmp_path / "outbox")
    received = smtp_server.store.messages[0].message
    assert received["Subject"] == f"⚠ [WARNING] {_expected_headline(daily_summary)}"
    html = _html(received)
    box = re.search(r'<td style="[^"]*" data-wb="warnings">(.*?)</td>', html, re.S)
    assert box and "KeyError: &#x27;od_diameter&#x27;" in box.group(1)
    assert "border:2px solid" in html
    assert warning in _text(received)
    _check_structure(received)


def test_a_failed_report_section_is_a_warning_even_if_not_passed(daily_summary, tmp_path: Path) -> None:
    report = _tiny_report(tmp_path, failed=["spc"])
    msg = compose_daily_email(daily_summary, report=report, report_url=REPORT_URL, warnings=[],
                              sender=SENDER, recipients=RECIPIENTS)
    assert "[WARNING]" in msg["Subject"]
    assert "Report section &#x27;spc&#x27; failed" in _html(msg)


def test_the_marker_makes_a_retried_delivery_send_nothing(smtp_server: Server, daily_summary,
                                                           tmp_path: Path) -> None:
    marker = tmp_path / "markers" / "daily-2026-11-04.json"
    msg = compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS)
    first = deliver(msg, settings=smtp_server.settings(), outbox=tmp_path / "outbox", marker=marker)
    # a retried flow composes the message again
    again = compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                                recipients=RECIPIENTS)
    second = deliver(again, settings=smtp_server.settings(), outbox=tmp_path / "outbox", marker=marker)
    assert len(smtp_server.store.messages) == 1
    assert first.method == "smtp" and second.method == "skipped"
    assert second.message_id == first.message_id and second.path == marker
    import json

    record = json.loads(marker.read_text())
    assert record["message_id"] == msg["Message-ID"] and record["method"] == "smtp"
    assert sorted(record["recipients"]) == sorted(RECIPIENTS)
    assert dt.datetime.fromisoformat(record["sent_at"]).tzinfo is not None
    assert [p.name for p in marker.parent.iterdir()] == [marker.name]  # no temporary file left


def test_without_smtp_host_the_message_lands_in_the_outbox(daily_summary, tmp_path: Path) -> None:
    report = _tiny_report(tmp_path)
    msg = compose_daily_email(daily_summary, report=report, report_url=None, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS)
    outbox = tmp_path / "reports" / "outbox"
    marker = tmp_path / "sent.json"
    result = deliver(msg, settings=Settings(_env_file=None, smtp_host=None), outbox=outbox, marker=marker)
    assert result.method == "outbox"
    files = list(outbox.glob("*.eml"))
    assert files == [result.path]
    assert files[0].name.startswith(f"{daily_summary.day:%Y-%m-%d}-plant-oee-")
    back = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert back["Subject"] == _expected_headline(daily_summary)
    assert back["Message-ID"] == msg["Message-ID"]
    # no URL: the report's pages travel as a zip next to the alternative parts
    assert back.get_content_type() == "multipart/mixed"
    _check_structure(back)  # type: ignore[arg-type]
    zips = [p for p in back.iter_attachments() if p.get_content_type() == "application/zip"]
    assert len(zips) == 1 and zips[0].get_filename() == f"report-{daily_summary.day:%Y-%m-%d}.zip"
    names = zipfile.ZipFile(BytesIO(zips[0].get_content())).namelist()
    folder = f"report-{daily_summary.day:%Y-%m-%d}"
    assert sorted(names) == [f"{folder}/index.html", f"{folder}/oee.html"]
    assert f"{folder}/index.html" in _text(back)
    assert deliver(msg, settings=Settings(_env_file=None), outbox=outbox, marker=marker).method == "skipped"
    assert len(list(outbox.glob("*.eml"))) == 1


def test_a_report_too_large_to_attach_is_named_not_attached(daily_summary, tmp_path: Path) -> None:
    report = _tiny_report(tmp_path)
    msg = compose_daily_email(daily_summary, report=report, report_url=None, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS, attachment_limit_bytes=10)
    assert msg.get_content_type() == "multipart/alternative"
    assert "too large to attach" in _text(msg) and str(report.report_dir) in _text(msg)


def test_starttls_and_auth_login(secure_smtp_server: Server, daily_summary, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The client checks the server certificate against the trusted CAs; trust the test's own.
    monkeypatch.setenv("SSL_CERT_FILE", str(secure_smtp_server.cert))
    msg = compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS)
    settings = secure_smtp_server.settings(smtp_starttls=True, smtp_user=USER, smtp_password=PASSWORD)
    result = deliver(msg, settings=settings, outbox=tmp_path / "outbox")
    assert result.method == "smtp"
    [got] = secure_smtp_server.store.messages
    assert got.tls and got.login == USER
    assert secure_smtp_server.store.mechanisms == ["LOGIN"]
    _check_structure(got.message)


def test_an_untrusted_certificate_stops_delivery(secure_smtp_server: Server, daily_summary,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS)
    marker = tmp_path / "sent.json"
    # trust nothing: the TLS handshake must fail, never fall back to plain text
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-cas"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-cas.pem"))
    settings = secure_smtp_server.settings(smtp_starttls=True, smtp_user=USER, smtp_password=PASSWORD)
    with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
        deliver(msg, settings=settings, outbox=tmp_path / "outbox", marker=marker)
    assert secure_smtp_server.store.messages == [] and not marker.exists()


@pytest.mark.parametrize("case", ["wrong password", "no starttls"])
def test_smtp_refusals_are_mail_errors_without_the_password(secure_smtp_server: Server, daily_summary,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            case: str) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(secure_smtp_server.cert))
    msg = compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS)
    marker = tmp_path / "sent.json"
    if case == "wrong password":
        settings = secure_smtp_server.settings(smtp_starttls=True, smtp_user=USER, smtp_password="wrong-pw")
        expected = "refused the login"
    else:  # the server insists on STARTTLS before AUTH and MAIL
        settings = secure_smtp_server.settings(smtp_starttls=False, smtp_user=USER, smtp_password="wrong-pw")
        expected = "STARTTLS"
    with pytest.raises(MailError, match=expected) as info:
        deliver(msg, settings=settings, outbox=tmp_path / "outbox", marker=marker)
    assert "wrong-pw" not in str(info.value)
    assert secure_smtp_server.store.messages == [] and not marker.exists()


def test_compose_needs_recipients(daily_summary) -> None:
    with pytest.raises(MailError, match="no recipients"):
        compose_daily_email(daily_summary, report=None, report_url=None, warnings=[], sender=SENDER,
                            recipients=[])


def test_the_oee_chart_uses_the_status_colours(daily_summary) -> None:
    from matplotlib.colors import to_rgb

    from workbench.reports.charts import oee_by_machine_png

    png = oee_by_machine_png(daily_summary)
    import matplotlib.image

    pixels = matplotlib.image.imread(BytesIO(png), format="png")[..., :3]
    for status in set(daily_summary.machines["status"]):
        rgb = np.array(to_rgb(STATUS_COLOURS[status]))
        assert (np.abs(pixels - rgb).max(axis=-1) < 0.01).any(), status


# -- a minimal report for the attachment tests -----------------------------------------------

def _tiny_report(tmp_path: Path, failed: list[str] | None = None) -> ReportResult:
    d = tmp_path / "report"
    d.mkdir(exist_ok=True)
    (d / "index.html").write_text("<!DOCTYPE html><title>index</title><a href='oee.html'>oee</a>")
    (d / "oee.html").write_text("<!DOCTYPE html><title>oee</title><p>OEE</p>")
    (d / "stray.txt").write_text("not part of the report")
    return ReportResult(index_html=d / "index.html", section_html={"oee": d / "oee.html"},
                        failed=list(failed or []))


def test_charts_drawn_ahead_are_used_and_must_be_of_the_same_day(daily_summary) -> None:
    import dataclasses

    from workbench.reports import EmailCharts, email_charts

    drawn = email_charts(daily_summary)
    assert drawn.oee_png.startswith(b"\x89PNG")
    msg = compose_daily_email(daily_summary, report=None, report_url="https://reports.example/x", warnings=[],
                              sender=SENDER, recipients=RECIPIENTS, images=drawn)
    pngs = [p.get_content() for p in msg.walk() if p.get_content_type() == "image/png"]
    assert drawn.oee_png in pngs
    stale = dataclasses.replace(drawn, day=daily_summary.day - dt.timedelta(days=1))
    assert isinstance(stale, EmailCharts)
    with pytest.raises(MailError, match="charts are of"):
        compose_daily_email(daily_summary, report=None, report_url=None, warnings=[], sender=SENDER,
                            recipients=RECIPIENTS, images=stale)


# -- a day without production data ---------------------------------------------------------------

def _silent_day(plant, day: dt.date):
    """The summary of ``day`` of a simulated plant whose collectors and syncs sent nothing that
    day (no production events, states, stops or scrap); the quality lab's measurements remain."""
    import pandas as pd

    from workbench import summary

    cal = plant.tables["shift_calendar"]
    firsts = cal.groupby("shift_date")["time_start"].min()
    start = firsts.get(day, pd.Timestamp(dt.datetime.combine(day, dt.time(6)), tz=plant.config.timezone))
    silent = {name: (frame.iloc[:0] if name in ("production_events", "machine_states", "downtime_events",
                                                 "scrap_events") else frame)
              for name, frame in plant.tables.items()}
    start = pd.Timestamp(start).to_pydatetime()
    return summary.daily_summary(silent, day=day, start=start, end=start + dt.timedelta(days=1),
                                 tz=plant.config.timezone)


def test_a_day_without_data_says_so_instead_of_a_quiet_day(smtp_server: Server, small_plant,
                                                           tmp_path: Path) -> None:
    from workbench.reports import outcome_markdown

    day = dt.date(2026, 10, 28)  # a Wednesday of the small plant: three shifts planned
    s = _silent_day(small_plant, day)
    truth = small_plant.truth.oee
    planned = truth.loc[truth["shift_date"] == day, "planned_busy_min"].sum()
    assert not s.has_data and planned > 0
    msg = compose_daily_email(s, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS, subject_prefix="[PLANT1]")
    deliver(msg, settings=smtp_server.settings(), outbox=tmp_path / "outbox")
    received = smtp_server.store.messages[0].message
    headline = f"NO DATA — Wed 28 Oct 2026: no production recorded ({planned:,.0f} planned min without data)"
    assert received["Subject"] == f"[PLANT1] {headline}"

    html, text = _html(received), _text(received)
    statement = (f"The shift calendar planned {planned:,.0f} machine-minutes of production; "
                 "all of them are without data.")
    assert statement in s.no_data_statement
    # text: the headline, then the statement, before anything else
    lines = text.splitlines()
    assert lines[0] == headline
    assert lines[3].startswith("!! No production data for Wed 28 Oct 2026 (")
    assert statement in " ".join(line.removeprefix("!! ") for line in lines if line.startswith("!! "))
    # html: a box right under the headline
    box = re.search(r'<td style="[^"]*" data-wb="no-data">(.*?)</td>', html, re.S)
    assert box and statement in box.group(1)
    assert html.index(f">{headline}</h1>") < html.index('data-wb="no-data"')
    # none of what made a dead day read like a quiet one
    for quiet in ("(none)", "No data 0 min", "OEE n/a", "No scrap.", "No unplanned downtime.", "OEE per machine",
                  "Top scrap causes", "Top downtime causes"):
        assert quiet not in text and quiet not in html, quiet
    assert not [p for p in received.walk() if p.get_content_type() == "image/png"]
    assert "cid:" not in html
    # the quality lab measured that day: its SPC findings still follow the statement
    assert not s.spc_violations.empty
    assert text.index("!! No production data") < text.index("SPC: out-of-control episodes")
    # the outcome the Prefect UI shows
    markdown = outcome_markdown(s, [], title="Daily report", index_html="index.html", delivery=None)
    assert f"**{headline}**" in markdown and "| OEE |" not in markdown


def test_a_day_without_data_nor_calendar(small_plant) -> None:
    s = _silent_day(small_plant, dt.date(2026, 12, 25))  # after the simulation: no shift either
    msg = compose_daily_email(s, report=None, report_url=REPORT_URL, warnings=["something else failed"],
                              sender=SENDER, recipients=RECIPIENTS)
    headline = "NO DATA — Fri 25 Dec 2026: no production and no shift calendar for this day"
    assert msg["Subject"] == f"⚠ [WARNING] {headline}"
    text = _text(msg)
    assert text.startswith(headline) and "no shift on this day either" in " ".join(text.split())
    assert "(none)" not in text and "No data 0 min" not in text
    assert 'data-wb="no-data"' in _html(msg) and 'data-wb="warnings"' in _html(msg)
