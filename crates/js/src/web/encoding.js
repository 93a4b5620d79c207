// TextEncoder and TextDecoder (UTF-8 only), loaded by web.js when a function first uses one.
export default ({ native, usv, encode, viewOf }) => {
  const UTF8_LABELS = ["unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"];

  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return encode(input);
    }
    encodeInto(source, destination) {
      const text = usv(source);
      let read = 0;
      let written = 0;
      for (const char of text) {
        const point = char.codePointAt(0);
        const size = point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
        if (written + size > destination.length) break;
        read += char.length;
        written += size;
      }
      destination.set(native.encodeUtf8(text.slice(0, read)));
      return { read, written };
    }
  }

  class TextDecoder {
    #fatal;
    #ignoreBOM;
    constructor(label = "utf-8", options = {}) {
      if (!UTF8_LABELS.includes(String(label).trim().toLowerCase())) {
        throw new RangeError(`TextDecoder supports only UTF-8, not "${label}"`);
      }
      this.#fatal = Boolean(options.fatal);
      this.#ignoreBOM = Boolean(options.ignoreBOM);
    }
    get encoding() {
      return "utf-8";
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }
    decode(input = new Uint8Array(0), options = {}) {
      if (options.stream) {
        throw new TypeError("TextDecoder's `stream` option is not supported: decode the whole input at once");
      }
      const bytes = viewOf(input);
      if (bytes === null) throw new TypeError("TextDecoder.decode takes an ArrayBuffer or a view of one");
      return native.decodeUtf8(bytes, this.#fatal, this.#ignoreBOM);
    }
  }

  return { TextEncoder, TextDecoder };
};
