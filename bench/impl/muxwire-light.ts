// muxwire with LightChannels: the same sessions as muxwire.ts, channels without Node streams.
import { muxwireImplementation } from './muxwire.js';

export default muxwireImplementation('light');
