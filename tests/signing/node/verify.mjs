// Asks the providers' own JavaScript libraries whether each request is genuine.
// stdin: a JSON list of {library, body (base64), headers (lower-case names), key};
// stdout: a JSON list of true/false, one per request (a library that throws said false).
import { verifyKey } from "discord-interactions";
import { LinearWebhookClient } from "@linear/sdk/webhooks";
import eventwebhook from "@sendgrid/eventwebhook";

const checks = {
  "discord-interactions": (body, headers, key) =>
    verifyKey(body, headers["x-signature-ed25519"] ?? "", headers["x-signature-timestamp"] ?? "", key),
  "@linear/sdk": (body, headers, key) =>
    new LinearWebhookClient(key).verify(body, headers["linear-signature"] ?? "", headers["linear-timestamp"]),
  "@sendgrid/eventwebhook": (body, headers, key) => {
    const webhook = new eventwebhook.EventWebhook();
    return webhook.verifySignature(webhook.convertPublicKeyToECDSA(key), body,
      headers["x-twilio-email-event-webhook-signature"] ?? "", headers["x-twilio-email-event-webhook-timestamp"] ?? "");
  },
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const answers = [];
for (const request of JSON.parse(input)) {
  try {
    answers.push(Boolean(await checks[request.library](Buffer.from(request.body, "base64"), request.headers, request.key)));
  } catch {
    answers.push(false);
  }
}
process.stdout.write(JSON.stringify(answers));
