import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Channel, LightChannel, lightClient, lightServer, multiplexedClient, multiplexedServer } from '../src/index.js';
import { memoryPipe } from './helpers.js';

const FACTS = ['id', 'session', 'protocolState', 'receiveWindow', 'outbound'] as const;

test('Channel and LightChannel share one definition of id, session, protocolState, receiveWindow and outbound', () => {
  for (const name of FACTS) {
    const node = Object.getOwnPropertyDescriptor(Channel.prototype, name);
    const light = Object.getOwnPropertyDescriptor(LightChannel.prototype, name);
    assert.equal(typeof node?.get, 'function', `Channel.prototype.${name} is a getter`);
    assert.equal(typeof light?.get, 'function', `LightChannel.prototype.${name} is a getter`);
    // The same source for both kinds (channel-facts.ts), reading through the class's accessor of its state,
    // not a copy per class over that class's private fields.
    assert.equal(node!.get!.toString(), light!.get!.toString(), `${name}: one definition`);
    assert.doesNotMatch(node!.get!.toString(), /#/, `${name}: no class's private field in the shared getter`);
  }
});

for (const kind of ['Channel', 'LightChannel'] as const) {
  test(`a ${kind} shows its id, session, protocol state, receive window and direction on both ends, and holds none as its own property`, async () => {
    const [a, b] = memoryPipe();
    const options = { keepAliveInterval: 0 };
    const client = kind === 'Channel' ? multiplexedClient(a, options) : lightClient(a, options);
    const server = kind === 'Channel' ? multiplexedServer(b, options) : lightServer(b, options);
    try {
      const dialled = client.dial();
      assert.equal(dialled.id, 1, 'the client dials odd ids');
      assert.equal(dialled.session, client);
      assert.equal(dialled.outbound, true);
      assert.equal(dialled.receiveWindow, 256 * 1024);
      assert.ok(['init', 'syn-sent'].includes(dialled.protocolState), dialled.protocolState);
      const [accepted] = (await once(server, 'channel')) as [Channel | LightChannel];
      assert.equal(accepted.id, 1);
      assert.equal(accepted.session, server);
      assert.equal(accepted.outbound, false);
      assert.equal(accepted.protocolState, 'established', 'accepted through the channel event');
      for (const name of FACTS) assert.equal(Object.hasOwn(dialled, name), false, `${name} lives on the prototype`);
      dialled.destroy();
      await once(dialled, 'close');
      assert.equal(dialled.protocolState, 'reset', 'destroyed before both FINs: reset');
    } finally {
      client.destroy();
      server.destroy();
    }
  });
}
