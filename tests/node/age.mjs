// age encrypt / decrypt with the npm age-encryption package, for the interop tests.
//   node age.mjs encrypt RECIPIENT < plain > sealed
//   AGE_IDENTITY=AGE-SECRET-KEY-... node age.mjs decrypt < sealed > plain
// The identity comes in the environment, never on the command line.
import { Decrypter, Encrypter } from "age-encryption";
import { readFileSync, writeSync } from "node:fs";

const input = new Uint8Array(readFileSync(0));
const [command, recipient] = process.argv.slice(2);
let output;
if (command === "encrypt") {
  const e = new Encrypter();
  e.addRecipient(recipient);
  output = await e.encrypt(input);
} else if (command === "decrypt") {
  const d = new Decrypter();
  d.addIdentity(process.env.AGE_IDENTITY);
  output = await d.decrypt(input, "uint8array");
} else {
  process.stderr.write("usage: age.mjs encrypt RECIPIENT | decrypt\n");
  process.exit(2);
}
let done = 0;
while (done < output.length) done += writeSync(1, output, done);
