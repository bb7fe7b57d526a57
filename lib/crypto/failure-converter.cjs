// The failure converter of every Lifeboat client and worker (DataConverter.failureConverterPath)
// and of the workflow bundle (bundleWorkflowCode's failureConverterPath): failure messages and
// stack traces go into an encoded-attributes payload, so the payload codec encrypts them too.
// Plain CommonJS on purpose: the SDK require()s it in Node (tests run without a TS loader) and
// webpack bundles it into the workflow sandbox.
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
