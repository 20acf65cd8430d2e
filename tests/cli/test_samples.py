import asyncio
import json

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store

runner = CliRunner()


def test_samples_lists_every_provider_with_its_source():
    result = runner.invoke(app, ["samples", "--json"])
    names = {s["name"] for s in json.loads(result.stdout)}
    assert {"stripe/payment_intent.succeeded", "stripe/payment_intent.payment_failed", "stripe/charge.refunded",
            "fhir/diagnosticreport.final", "fhir/diagnosticreport.corrected"} <= names
    assert {n.split("/")[0] for n in names} >= {"stripe", "github", "standard", "svix", "shopify", "slack", "twilio"}
    from hookinspect.signing.registry import PROVIDERS
    listed = json.loads(result.stdout)
    assert {s["provider"] for s in listed if s["provider"]} == set(PROVIDERS) - {"fhir"}  # one sample per provider at least
    assert all(s["source"].startswith("https://") for s in listed)


async def test_send_with_overrides_reaches_the_receiver_signed(receiver, store_path):
    url, _ = receiver
    result = await asyncio.to_thread(runner.invoke, app, ["send", "stripe/payment_intent.succeeded", "--to", url + "/",
                                                          "--secret", "whsec_x", "--set", "data.object.amount=2500"])
    assert result.exit_code == 0, result.output
    with Store(store_path) as store:
        delivery = store.get(1)
    assert delivery.path == "/stripe/webhook" and delivery.json()["data"]["object"]["amount"] == 2500
    assert delivery.headers.get("stripe-signature").startswith("t=")


def test_send_errors_are_one_line():
    unknown = runner.invoke(app, ["send", "stripe/payment_intent.succeded", "--to", "http://127.0.0.1:1/"])
    assert unknown.exit_code == 2 and "did you mean stripe/payment_intent.succeeded" in unknown.stderr
    down = runner.invoke(app, ["send", "github/push", "--to", "http://127.0.0.1:1/"])
    assert down.exit_code == 4 and "connection refused" in down.stderr  # the README: 4 when a target cannot be reached
    bad = runner.invoke(app, ["send", "github/push", "--to", "http://127.0.0.1:1/", "--set", "nonsense"])
    assert bad.exit_code == 2 and "write it as data.object.amount=2500" in bad.stderr


async def test_send_takes_a_target_without_a_scheme_and_an_unreachable_one_exits_4(target):
    from tests.factories import free_port

    def send(to):
        return runner.invoke(app, ["send", "stripe/payment_intent.succeeded", "--to", to])

    host_port = target.url.removeprefix("http://")
    result = await asyncio.to_thread(send, f"{host_port}/in")
    assert result.exit_code == 0, result.output
    assert target.received[0]["path_qs"] == "/in"
    assert (await asyncio.to_thread(send, f"127.0.0.1:{free_port()}/in")).exit_code == 4
    target.status = 500
    assert (await asyncio.to_thread(send, f"{host_port}/in")).exit_code == 1  # an answer, but an error


def test_mistyped_commands_are_one_line_usage_errors_that_leave_nothing_behind(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hookinspect.cli.app import app

    monkeypatch.chdir(tmp_path)  # where the store and the relay's data go by default
    monkeypatch.delenv("HOOKINSPECT_STORE", raising=False)
    for command in (["listen", "--port", "99999"], ["relay", "--port", "70000"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "port must be a whole number 0–65535" in result.stderr and "Traceback" not in result.output
    for command in (["listen", "--forward-to", "ftp://x"], ["listen", "--secret", "nope"],
                    ["relay", "--max-body", "lots"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "Traceback" not in result.output, command
    assert list(tmp_path.iterdir()) == []  # a mistyped command made no store and no relay data


async def test_every_signed_sample_is_sent_captured_and_verified_as_its_provider(receiver, store_path, tmp_path):
    """Each provider's sample goes out signed with the user's secret, reaches a real receiver, and
    `verify` with that secret calls the stored delivery valid, as its own provider."""
    from hookinspect.formats.samples import list_samples
    from tests.signing.test_registry import secret_pair

    url, _ = receiver
    signed = [s for s in list_samples() if s.provider]
    assert len({s.provider for s in signed}) >= 30
    for seq, sample in enumerate(signed, 1):
        secret, _ = secret_pair(sample.provider, tmp_path)
        sent = await asyncio.to_thread(runner.invoke, app, ["send", sample.name, "--to", url + "/", "--secret", secret])
        assert sent.exit_code == 0, (sample.name, sent.output)
        checked = await asyncio.to_thread(runner.invoke, app, ["verify", str(seq), "--secret", f"{sample.provider}={secret}",
                                                               "--json", "--store", str(store_path)])
        verdict = json.loads(checked.stdout)
        assert (verdict["provider"], verdict["verdict"]) == (sample.provider, "valid"), (sample.name, verdict)


def test_send_with_a_secret_that_cannot_sign_is_one_line():
    from typer.testing import CliRunner

    from hookinspect.cli.app import app

    for sample, secret in (("adyen/AUTHORISATION", "adyen=nothex"), ("svix/user.created", "svix=whsec_***")):
        result = CliRunner().invoke(app, ["send", sample, "--to", "http://127.0.0.1:9/", "--secret", secret])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.stderr.startswith(f"error: cannot sign as {sample.split('/')[0]}")
        assert len(result.stderr.strip().splitlines()) == 1 and secret.split("=")[1] not in result.stderr
