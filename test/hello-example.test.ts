import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helloExample } from '../examples/hello-10k.js';

test('the original README example: 10,000 channels over one TCP connection echo "hello" and close', async () => {
  const result = await helloExample(10_000);
  assert.equal(result.channels, 10_000);
  assert.equal(result.leftOpen, 0);
  assert.ok(result.totalMs > 0);
});
