import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helloExample } from '../examples/hello-10k.js';

test('the original README example: 10,000 channels over one TCP connection echo "hello" and close', async () => {
  const result = await helloExample(10_000);
  assert.equal(result.accepted, 10_000, 'the server accepted every channel');
  assert.equal(result.echoed, 10_000, 'every channel got its exact echo');
  assert.equal(result.leftOpen, 0, 'no channel left open on the client');
  assert.equal(result.serverLeftOpen, 0, 'no channel left open on the server');
});
