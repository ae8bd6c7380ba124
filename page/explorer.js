// The latent explorers: each decodes the point under the pointer with the trained decoder,
// in plain JavaScript, from the weights in assets/explorer/<model>.js (window.VAE_MODELS).
// Below the plane, a strip of digits: fresh prior samples, or a straight walk between two chosen points.
// No libraries, no network. The page loads no explorer data with itself: an explorer's script
// (its data-script) is added to the page only when the reader nears the explorer (it comes within a
// screen of the viewport), focuses or touches it, or, for one folded in a <details data-explorer-script>,
// opens it. Its box keeps its size from the start, so that a link into it lands on it.
// A conditional model (num_classes in its data) decodes [z, one-hot label]: a class picker sets the label.
// window.vaeExplorer exposes the decoder and each explorer's state (for the tests).
(function () {
  "use strict";

  var DIGIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // Matplotlib's tab10
  var NEIGHBORS = 10;  // test digits the description of a decoded point names
  var ANNOUNCE_AFTER_MS = 500;  // the description is announced once the pointer rests this long
  var NEAR = "100% 0px";  // an explorer's data load when it comes within one screen height of the viewport
  var MODELS = {};
  var networks = {};
  var explorers = {};
  // What the page has done so far (window.vaeExplorer.stats): the explorer scripts it added, the explorers
  // started, and the decoder forward passes run.
  var stats = { scripts: [], started: [], decodes: 0, encodes: 0 };
  var encoders = {};  // the drawing pad's encoders, unpacked: {model: layers}

  function bytes(base64) {
    var binary = atob(base64);
    var result = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) result[i] = binary.charCodeAt(i);
    return result;
  }
  function floats(base64) {  // little-endian float32
    var raw = bytes(base64), view = new DataView(raw.buffer), values = new Float32Array(raw.length / 4);
    for (var j = 0; j < values.length; j++) values[j] = view.getFloat32(4 * j, true);
    return values;
  }

  // The layers of a decoder: kernel[i][k] = int8 value × scale[k] (kernel is inputs × outputs, row-major).
  function network(name) {
    if (!networks[name]) {
      var model = MODELS[name];
      if (!model) throw new Error("no explorer data for model " + name + " (assets/explorer/" + name + ".js)");
      networks[name] = model.layers.map(function (layer) {
        return { inputs: layer["in"], outputs: layer.out, activation: layer.activation,
                 kernel: new Int8Array(bytes(layer.kernel).buffer), scale: floats(layer.scale), bias: floats(layer.bias) };
      });
    }
    return networks[name];
  }

  // The decoder's input for latent point z: z itself, or for a conditional model z followed by the
  // one-hot of `label` (the order of the first kernel's rows, see page/build.py). Every decode goes through here.
  function decoderInput(name, z, label) {
    var classes = MODELS[name] && MODELS[name].num_classes;
    if (!classes) {
      if (label !== undefined && label !== null) throw new Error("model " + name + " takes no label");
      return Float64Array.from(z);
    }
    if (!(label >= 0 && label < classes && label === Math.floor(label))) {
      throw new Error("model " + name + " needs a label, an integer from 0 to " + (classes - 1) + ", got " + label);
    }
    var x = new Float64Array(z.length + classes);
    x.set(z);
    x[z.length + label] = 1;
    return x;
  }

  // The decoder: Dense layers, relu / sigmoid, accumulated in float64.
  // Returns the 784 pixel probabilities of the 28×28 digit (for a conditional model, the digit `label`);
  // with `logits`, the 784 logits before the sigmoid.
  function decode(name, z, label, logits) {
    stats.decodes++;
    return forward(network(name), decoderInput(name, z, label), logits, name);
  }

  // Dense layers (relu / sigmoid / linear) on the input x, accumulated in float64; `logits`: skip the last sigmoid.
  function forward(layers, x, logits, name) {
    if (x.length !== layers[0].inputs) {
      throw new Error("model " + name + " takes " + layers[0].inputs + " inputs, got " + x.length);
    }
    for (var l = 0; l < layers.length; l++) {
      var layer = layers[l], n = layer.outputs, kernel = layer.kernel;
      var sum = new Float64Array(n);
      for (var i = 0; i < layer.inputs; i++) {
        var xi = x[i];
        if (xi === 0) continue;
        for (var k = 0, row = i * n; k < n; k++) sum[k] += xi * kernel[row + k];
      }
      var y = new Float64Array(n);
      for (var j = 0; j < n; j++) {
        var value = layer.bias[j] + layer.scale[j] * sum[j];
        if (layer.activation === "relu") value = value > 0 ? value : 0;
        else if (layer.activation === "sigmoid" && !(logits && l === layers.length - 1)) value = 1 / (1 + Math.exp(-value));
        y[j] = value;
      }
      x = y;
    }
    return x;
  }

  // KL(N(μ, diag σ²) ‖ p(z)) in nats, exact: p = N(0, I), or N(0, Σ) for a model with a prior_covariance (2-D).
  function klDivergence(model, mu, sigma) {
    var k = mu.length, kl = 0, d;
    if (!model.prior_covariance) {
      for (d = 0; d < k; d++) kl += 0.5 * (mu[d] * mu[d] + sigma[d] * sigma[d] - 1 - 2 * Math.log(sigma[d]));
      return kl;
    }
    var s = model.prior_covariance;
    if (k !== 2) throw new Error("a prior covariance is supported in 2-D only");
    var det = s[0][0] * s[1][1] - s[0][1] * s[1][0];
    var inv = [[s[1][1] / det, -s[0][1] / det], [-s[1][0] / det, s[0][0] / det]];  // Σ⁻¹
    var trace = inv[0][0] * sigma[0] * sigma[0] + inv[1][1] * sigma[1] * sigma[1];
    var mahalanobis = mu[0] * (inv[0][0] * mu[0] + inv[0][1] * mu[1]) + mu[1] * (inv[1][0] * mu[0] + inv[1][1] * mu[1]);
    return 0.5 * (trace + mahalanobis - k + Math.log(det) - 2 * Math.log(sigma[0]) - 2 * Math.log(sigma[1]));
  }

  // The −ELBO of an image (784 gray levels in 0..1) under its posterior N(mu, diag sigma²), in nats:
  // {reconstruction: E_q[−ln p(x | z)], the chapter's summed binary cross-entropy averaged over q by Gauss–Hermite
  // quadrature (the data's nodes per dimension, all their combinations), kl: exact, total: their sum}.
  function lossSplit(name, pixels, mu, sigma, label) {
    var model = MODELS[name], nodes = model.quadrature.nodes, weights = model.quadrature.weights, k = mu.length;
    var reconstruction = 0, count = Math.pow(nodes.length, k);
    for (var c = 0; c < count; c++) {
      var z = [], weight = 1;
      for (var d = 0, rest = c; d < k; d++, rest = Math.floor(rest / nodes.length)) {
        z.push(mu[d] + sigma[d] * nodes[rest % nodes.length]);
        weight *= weights[rest % nodes.length];
      }
      var logits = decode(name, z, label, true), loss = 0;
      for (var i = 0; i < 784; i++) {  // −ln p(x | z) = Σ softplus(l) − x l, computed stably
        var l = logits[i];
        loss += Math.max(l, 0) - pixels[i] * l + Math.log1p(Math.exp(-Math.abs(l)));
      }
      reconstruction += weight * loss;
    }
    var kl = klDivergence(model, mu, sigma);
    return { reconstruction: reconstruction, kl: kl, total: reconstruction + kl };
  }

  // "−ELBO 140.3 nats = reconstruction 134.1 + KL 6.2": the loss split as the explorers write it.
  function lossText(split) {
    return "\u2212ELBO " + split.total.toFixed(1) + " nats = reconstruction " + split.reconstruction.toFixed(1) +
      " (\u2212ln p(x | z) averaged over the posterior) + KL " + split.kl.toFixed(2) + " (exact).";
  }

  // ---- The drawing pad: MNIST's preprocessing and the encoder (page/build.py has the same in NumPy) ----

  // The pad's ink, size × size (Uint8Array, row-major): a pixel is inked when its center lies within `pen` of a
  // stroke. strokes: [[[x, y], ...], ...], x and y in 0..1 (x right, y down); a one-point stroke is a dot.
  function inkStrokes(strokes, size, pen) {
    var ink = new Uint8Array(size * size);
    strokes.forEach(function (stroke) {
      var points = stroke.map(function (point) { return [point[0] * size, point[1] * size]; });
      var segments = points.length > 1 ? points.slice(1).map(function (b, i) { return [points[i], b]; }) : [[points[0], points[0]]];
      segments.forEach(function (segment) {
        var ax = segment[0][0], ay = segment[0][1], dx = segment[1][0] - ax, dy = segment[1][1] - ay;
        var length2 = dx * dx + dy * dy;
        var i0 = Math.max(0, Math.floor(Math.min(ay, ay + dy) - pen - 1)), i1 = Math.min(size - 1, Math.ceil(Math.max(ay, ay + dy) + pen + 1));
        var j0 = Math.max(0, Math.floor(Math.min(ax, ax + dx) - pen - 1)), j1 = Math.min(size - 1, Math.ceil(Math.max(ax, ax + dx) + pen + 1));
        for (var i = i0; i <= i1; i++) {
          var cy = i + 0.5;
          for (var j = j0; j <= j1; j++) {
            var cx = j + 0.5, t = 0;
            if (length2 !== 0) t = Math.min(1, Math.max(0, ((cx - ax) * dx + (cy - ay) * dy) / length2));
            var ex = cx - (ax + t * dx), ey = cy - (ay + t * dy);
            if (ex * ex + ey * ey <= pen * pen) ink[i * size + j] = 1;
          }
        }
      });
    });
    return ink;
  }

  // cover[i][c]: how much of output cell [c, c + 1) the source pixel [start + i·scale, start + (i + 1)·scale) covers.
  function coverage(start, length, scale, cells) {
    var cover = [];
    for (var i = 0; i < length; i++) {
      var left = start + i * scale, row = new Float64Array(cells);
      for (var c = 0; c < cells; c++) row[c] = Math.max(0, Math.min(left + scale, c + 1) - Math.max(left, c));
      cover.push(row);
    }
    return cover;
  }

  // The ink prepared as MNIST's digits were: cropped to its bounding box, scaled into 20 × 20 keeping its aspect
  // (each pixel the share of its area the ink covers), moved by whole pixels so that its centre of mass is at the
  // centre of 28 × 28, gray levels rounded to 1/255. Returns Float64Array(784) in 0..1 (all 0 without ink).
  function mnistRaster(ink, inkSize) {
    var BOX = 20, SIZE = 28, gray = new Float64Array(SIZE * SIZE), r0 = inkSize, r1 = -1, c0 = inkSize, c1 = -1, i, j, r, c;
    for (i = 0; i < inkSize; i++) for (j = 0; j < inkSize; j++) if (ink[i * inkSize + j]) {
      r0 = Math.min(r0, i); r1 = Math.max(r1, i); c0 = Math.min(c0, j); c1 = Math.max(c1, j);
    }
    if (r1 < 0) return gray;
    var height = r1 - r0 + 1, width = c1 - c0 + 1, scale = BOX / Math.max(height, width);
    var top = (SIZE - height * scale) / 2, left = (SIZE - width * scale) / 2;
    var coverY = coverage(top, height, scale, SIZE), coverX = coverage(left, width, scale, SIZE);
    var rowsInk = [];  // (crop @ coverX): each crop row spread over the output columns
    for (i = 0; i < height; i++) {
      var spread = new Float64Array(SIZE);
      for (j = 0; j < width; j++) if (ink[(r0 + i) * inkSize + c0 + j]) for (c = 0; c < SIZE; c++) spread[c] += coverX[j][c];
      rowsInk.push(spread);
    }
    var total = 0, rowMass = 0, colMass = 0, value;
    for (r = 0; r < SIZE; r++) for (c = 0; c < SIZE; c++) {
      value = 0;
      for (i = 0; i < height; i++) value += coverY[i][r] * rowsInk[i][c];
      value = Math.floor(255 * Math.min(1, Math.max(0, value)) + 0.5) / 255;
      gray[r * SIZE + c] = value;
      total += value; rowMass += value * (r + 0.5); colMass += value * (c + 0.5);
    }
    var shiftY = Math.floor(SIZE / 2 - rowMass / total + 0.5), shiftX = Math.floor(SIZE / 2 - colMass / total + 0.5);
    shiftY = Math.max(-Math.floor(top), Math.min(Math.floor(top), shiftY));
    shiftX = Math.max(-Math.floor(left), Math.min(Math.floor(left), shiftX));
    var moved = new Float64Array(SIZE * SIZE);
    for (r = 0; r < SIZE; r++) for (c = 0; c < SIZE; c++) {
      var from = (r - shiftY) * SIZE + (c - shiftX);
      if (r - shiftY >= 0 && r - shiftY < SIZE && c - shiftX >= 0 && c - shiftX < SIZE) moved[r * SIZE + c] = gray[from];
    }
    return moved;
  }

  function encoderLayers(name) {
    if (!encoders[name]) {
      var data = (window.VAE_ENCODERS || {})[name];
      if (!data) throw new Error("no encoder data for model " + name);
      encoders[name] = data.layers.map(function (layer) {
        return { inputs: layer["in"], outputs: layer.out, activation: layer.activation,
                 kernel: new Int8Array(bytes(layer.kernel).buffer), scale: floats(layer.scale), bias: floats(layer.bias) };
      });
    }
    return encoders[name];
  }

  // The int8 encoder on 784 gray levels in 0..1: {mu, logVar}, each latent_dim numbers.
  function encode(name, pixels) {
    stats.encodes++;
    var out = forward(encoderLayers(name), Float64Array.from(pixels), false, "encoder " + name), k = out.length / 2;
    return { mu: Array.from(out.subarray(0, k)), logVar: Array.from(out.subarray(k)) };
  }

  // The classes of the test codes nearest to z: [{label, count}], most frequent first.
  function nearestClasses(points, z) {
    var nearest = points.map(function (point) {
      var distance = 0;
      for (var d = 0; d < z.length; d++) distance += (point.z[d] - z[d]) * (point.z[d] - z[d]);
      return { distance: distance, label: point.label };
    }).sort(function (a, b) { return a.distance - b.distance; }).slice(0, NEIGHBORS);
    var counts = {};
    nearest.forEach(function (point) { counts[point.label] = (counts[point.label] || 0) + 1; });
    return Object.keys(counts).map(Number).sort(function (a, b) { return counts[b] - counts[a] || a - b; })
      .map(function (label) { return { label: label, count: counts[label] }; });
  }

  function drawGray(canvas, values) {  // 784 values in 0..1, drawn dark on white
    var context = canvas.getContext("2d"), image = context.createImageData(28, 28);
    for (var i = 0; i < 784; i++) {
      var gray = Math.round(255 * (1 - values[i]));
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = gray;
      image.data[4 * i + 3] = 255;
    }
    context.putImageData(image, 0, 0);
  }

  // The drawing pad of an explorer: strokes by pointer (mouse, pen, touch), or a 28 × 28 raster edited at the keyboard.
  function Pad(explorer, root) {
    var self = this;
    this.explorer = explorer;
    this.root = root;
    this.canvas = root.querySelector(".explorer-pad-canvas");
    this.result = root.querySelector(".explorer-pad-result");
    this.strokes = [];
    this.raster = null;  // the 784 gray levels encoded; set from the strokes, or edited at the keyboard
    this.editing = false;  // the raster is edited at the keyboard (a cursor on the pad)
    this.cursor = [14, 14];  // [row, column]
    this.nextTest = 0;
    this.posterior = null;  // {mu, sigma, loss, pixels, neighbors}
    this.canvas.addEventListener("pointerdown", function (event) {
      if (self.editing) { self.editing = false; self.strokes = []; }
      self.drawing = true;
      if (self.canvas.setPointerCapture) self.canvas.setPointerCapture(event.pointerId);
      self.strokes.push([self.point(event)]);
      self.redraw();
      event.preventDefault();
    });
    this.canvas.addEventListener("pointermove", function (event) {
      if (!self.drawing) return;
      var stroke = self.strokes[self.strokes.length - 1];
      (event.getCoalescedEvents ? event.getCoalescedEvents() : [event]).forEach(function (e) { stroke.push(self.point(e)); });
      if (!event.getCoalescedEvents || !event.getCoalescedEvents().length) stroke.push(self.point(event));
      self.redraw();
    });
    var end = function () { if (self.drawing) { self.drawing = false; self.fromStrokes(); } };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
    root.querySelector(".explorer-pad-clear").addEventListener("click", function () { self.clear(); });
    root.querySelector(".explorer-pad-test").addEventListener("click", function () { self.startFromTest(); });
    this.canvas.addEventListener("keydown", function (event) { self.key(event); });
    this.redraw();
  }

  Pad.prototype.point = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)),
            Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height))];
  };

  // Load the encoder's script the first time the pad is used, then call `then`.
  Pad.prototype.withEncoder = function (then) {
    var self = this, name = this.explorer.name;
    if ((window.VAE_ENCODERS || {})[name]) { then(); return; }
    this.waiting = then;
    if (this.loading) return;
    this.loading = true;
    stats.scripts.push("encoder_" + name);
    this.result.textContent = "Loading the encoder\u2026";
    var script = document.createElement("script");
    script.src = this.root.getAttribute("data-encoder-script");
    script.onload = script.onerror = function () {
      if (!(window.VAE_ENCODERS || {})[name]) {
        self.result.textContent = "The encoder's data (" + script.getAttribute("src") + ") did not load.";
        return;
      }
      var waiting = self.waiting;
      self.waiting = null;
      waiting();
    };
    document.body.appendChild(script);
  };

  Pad.prototype.fromStrokes = function () {
    var self = this, data = window.VAE_ENCODERS && window.VAE_ENCODERS[this.explorer.name];
    this.withEncoder(function () {
      data = window.VAE_ENCODERS[self.explorer.name];
      self.raster = self.strokes.length ? mnistRaster(inkStrokes(self.strokes, data.raster, data.pen), data.raster) : null;
      self.update();
    });
  };

  Pad.prototype.clear = function () {
    this.strokes = [];
    this.raster = null;
    this.editing = false;
    this.update();
  };

  // Put the next of the explorer's test images on the pad, to edit at the keyboard.
  Pad.prototype.startFromTest = function () {
    var self = this, test = this.explorer.tests[this.nextTest % this.explorer.tests.length];
    this.nextTest++;
    this.withEncoder(function () {
      self.strokes = [];
      self.raster = Float64Array.from(test.pixels, function (v) { return v / 255; });
      self.editing = true;
      self.update();
      self.canvas.focus();
    });
  };

  Pad.prototype.key = function (event) {
    var moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    var self = this;
    if (moves[event.key]) {
      if (!this.editing) this.startEditing();
      this.cursor = [Math.max(0, Math.min(27, this.cursor[0] + moves[event.key][0])),
                     Math.max(0, Math.min(27, this.cursor[1] + moves[event.key][1]))];
      this.redraw();
      this.result.textContent = "Cursor at row " + (this.cursor[0] + 1) + ", column " + (this.cursor[1] + 1) + ": " +
        (this.raster && this.raster[28 * this.cursor[0] + this.cursor[1]] >= 0.5 ? "inked." : "blank.");
      event.preventDefault();
    } else if (event.key === " " || event.key === "Enter") {
      if (!this.editing) this.startEditing();
      this.withEncoder(function () {
        var at = 28 * self.cursor[0] + self.cursor[1];
        self.raster[at] = self.raster[at] >= 0.5 ? 0 : 1;
        self.update();
      });
      event.preventDefault();
    }
  };

  // Edit what the pad holds (its 28 × 28 raster, blank if nothing was drawn) at the keyboard.
  Pad.prototype.startEditing = function () {
    this.editing = true;
    this.strokes = [];
    if (!this.raster) this.raster = new Float64Array(784);
  };

  // Encode the raster; show it, its reconstruction, its μ ± 2σ on the plane and its −ELBO split.
  Pad.prototype.update = function () {
    var explorer = this.explorer, name = explorer.name;
    this.redraw();
    var empty = !this.raster || !this.raster.some(function (v) { return v > 0; });
    if (empty) {
      this.posterior = null;
      drawGray(this.root.querySelector(".explorer-pad-raster"), new Float64Array(784));
      drawGray(this.root.querySelector(".explorer-pad-rebuilt"), new Float64Array(784));
      this.result.textContent = this.editing ? "The pad is blank: Space inks the pixel under the cursor." : "";
      explorer.drawPlane();
      return;
    }
    var encoded = encode(name, this.raster);
    var sigma = encoded.logVar.map(function (v) { return Math.exp(0.5 * v); });
    var loss = lossSplit(name, this.raster, encoded.mu, sigma);
    var rebuilt = decode(name, encoded.mu);
    var neighbors = nearestClasses(explorer.points, encoded.mu);
    this.posterior = { mu: encoded.mu, logVar: encoded.logVar, sigma: sigma, loss: loss, pixels: Array.from(this.raster),
                       reconstruction: Array.from(rebuilt), neighbors: neighbors };
    drawGray(this.root.querySelector(".explorer-pad-raster"), this.raster);
    drawGray(this.root.querySelector(".explorer-pad-rebuilt"), rebuilt);
    var names = "\u2080\u2081\u2082\u2083";
    this.result.textContent = "Your digit: " + encoded.mu.map(function (m, d) {
      return "\u03bc" + names[d] + " = " + formatNumber(m).trim() + ", \u03c3" + names[d] + " = " + sigma[d].toFixed(3);
    }).join("; ") + ". " + lossText(loss) + " Of the " + NEIGHBORS + " test digits encoded nearest to \u03bc, " +
      neighbors.map(function (n) { return n.count + " " + (n.count === 1 ? "is a " : "are ") + n.label; }).join(", ") + ".";
    explorer.drawPlane();
  };

  // The pad: the strokes, black on white; at the keyboard, the 28 × 28 raster and its cursor.
  Pad.prototype.redraw = function () {
    var canvas = this.canvas, rect = canvas.getBoundingClientRect(), ratio = window.devicePixelRatio || 1;
    var size = Math.max(1, Math.round(rect.width)), context = canvas.getContext("2d");
    if (canvas.width !== Math.round(size * ratio)) { canvas.width = canvas.height = Math.round(size * ratio); }
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, size, size);
    var data = window.VAE_ENCODERS && window.VAE_ENCODERS[this.explorer.name];
    if (this.editing && this.raster) {
      var cell = size / 28;
      for (var i = 0; i < 784; i++) {
        if (!this.raster[i]) continue;
        var gray = Math.round(255 * (1 - this.raster[i]));
        context.fillStyle = "rgb(" + gray + "," + gray + "," + gray + ")";
        context.fillRect((i % 28) * cell, Math.floor(i / 28) * cell, cell + 0.5, cell + 0.5);
      }
      context.lineWidth = 2;
      context.strokeStyle = "#1f4fd1";
      context.strokeRect(this.cursor[1] * cell + 1, this.cursor[0] * cell + 1, cell - 2, cell - 2);
      return;
    }
    context.strokeStyle = context.fillStyle = "#111111";
    context.lineCap = context.lineJoin = "round";
    context.lineWidth = 2 * (data ? data.pen / data.raster : 0.0625) * size;
    this.strokes.forEach(function (stroke) {
      context.beginPath();
      context.moveTo(stroke[0][0] * size, stroke[0][1] * size);
      stroke.forEach(function (point) { context.lineTo(point[0] * size, point[1] * size); });
      if (stroke.length === 1) context.lineTo(stroke[0][0] * size + 0.01, stroke[0][1] * size);
      context.stroke();
    });
    if (!this.strokes.length) {
      context.fillStyle = "#8a8f99";
      context.font = "14px system-ui, sans-serif";
      context.textAlign = "center";
      context.fillText("draw a digit here", size / 2, size / 2);
    }
  };

  // A number with a fixed width: "−1.20", or " 1.20" with a figure space, so readouts never reflow.
  function formatNumber(value) {
    var text = Math.abs(value).toFixed(2);
    return (value < -0.005 ? "\u2212" : "\u2007") + text;
  }

  function Explorer(root) {
    var self = this;
    this.root = root;
    this.name = root.getAttribute("data-model");
    this.model = MODELS[this.name];
    this.dim = this.model.latent_dim;
    this.classes = this.model.num_classes || 0;  // a conditional model: the class picker's label is decoded with z
    this.label = this.classes ? this.model.label : null;
    this.classButtons = Array.prototype.slice.call(root.querySelectorAll(".explorer-class"));
    this.sampleButton = root.querySelector(".explorer-sample");
    this.plane = root.querySelector(".explorer-plane");
    this.digit = root.querySelector(".explorer-digit");
    this.readout = root.querySelector(".explorer-z");
    this.status = root.querySelector(".explorer-status");
    this.slider = root.querySelector(".explorer-slice");
    this.sliceReadout = root.querySelector(".explorer-slice-value");
    this.activate = root.querySelector(".explorer-activate");
    this.strip = root.querySelector(".explorer-strip");
    this.stripStatus = root.querySelector(".explorer-strip-status");
    this.walkButton = root.querySelector(".explorer-walk");
    this.stripCount = this.strip.width / 28;
    this.stripZ = [];  // the latent points decoded in the strip
    this.stripPixels = [];
    this.stripKind = null;  // "samples" or "walk"
    this.walking = false;  // choosing the two ends of a walk
    this.walkEnds = [];
    this.pickButton = root.querySelector(".explorer-pick");
    this.picking = false;  // choosing a test image
    this.picked = null;  // the index (into this.tests) of the test image shown, or null
    var tests = this.model.test_images, testZ = floats(tests.z), testSigma = floats(tests.sigma), raw = bytes(tests.pixels);
    this.tests = [];
    for (var t = 0; t < tests.count; t++) {
      this.tests.push({ index: tests.index[t], label: +tests.labels.charAt(t), pixels: raw.subarray(784 * t, 784 * (t + 1)),
                        z: Array.prototype.slice.call(testZ, t * this.dim, (t + 1) * this.dim),
                        sigma: Array.prototype.slice.call(testSigma, t * this.dim, (t + 1) * this.dim) });
    }
    this.extent = this.model.view.extent;
    this.z = new Array(this.dim).fill(0);
    this.pixels = null;
    this.exploring = false;  // touch: a drag on the plane decodes only after the reader chose to explore
    this.touch = null;

    var zs = floats(this.model.points.z);
    this.points = [];
    for (var p = 0; p < this.model.points.count; p++) {
      this.points.push({ z: Array.prototype.slice.call(zs, p * this.dim, (p + 1) * this.dim),
                         label: +this.model.points.labels.charAt(p) });
    }
    this.centers = this.classes ? [] : this.classCenters();
    // The prior's (z0, z1) marginal, N(0, Σ) with Σ = L Lᵀ (the (z0, z1) block), or N(0, I): L = I. In 3-D the
    // prior is N(0, I), so its marginal on the plane is also its conditional at any slice z2.
    this.cholesky = [[1, 0], [0, 1]];
    if (this.model.prior_covariance) {
      var s = this.model.prior_covariance;
      var l00 = Math.sqrt(s[0][0]), l10 = s[1][0] / l00, l11 = Math.sqrt(s[1][1] - l10 * l10);
      this.cholesky = [[l00, 0], [l10, l11]];
    }

    var padRoot = root.querySelector(".explorer-pad");
    this.pad = padRoot ? new Pad(this, padRoot) : null;
    this.layer = document.createElement("canvas");  // the points, redrawn only on resize or slice change
    this.digitContext = this.digit.getContext("2d");
    this.digitImage = this.digitContext.createImageData(28, 28);

    this.plane.addEventListener("pointerdown", function (event) {
      if (self.walking && event.pointerType !== "touch") {  // a click: one end of the walk
        self.setFromEvent(event);
        self.addWalkEnd(self.z);
        return;
      }
      if (self.picking && event.pointerType !== "touch") {  // a click: the nearest ringed test dot
        self.setFromEvent(event);
        self.pickNearest(self.z);
        return;
      }
      if (event.pointerType === "touch" && (!self.exploring || self.walking || self.picking)) {
        self.touch = { x: event.clientX, y: event.clientY };  // a tap or the start of a scroll: see pointerup
        return;
      }
      if (self.plane.setPointerCapture) self.plane.setPointerCapture(event.pointerId);
      self.pressed = true;
      self.setFromEvent(event);
    });
    this.plane.addEventListener("pointermove", function (event) {
      if (event.pointerType === "mouse" || self.pressed) self.setFromEvent(event);
    });
    this.plane.addEventListener("pointerup", function (event) {
      var touch = self.touch;
      self.touch = null;
      self.pressed = false;
      if (touch && Math.abs(event.clientX - touch.x) < 10 && Math.abs(event.clientY - touch.y) < 10) {
        if (self.walking) {  // a tap while choosing a walk: one of its ends
          self.setFromEvent(event);
          self.addWalkEnd(self.z);
          return;
        }
        if (self.picking) {  // a tap while picking: the nearest ringed test dot
          self.setFromEvent(event);
          self.pickNearest(self.z);
          return;
        }
        self.setExploring(true);  // a tap: decode there, and let the next drags explore
        self.setFromEvent(event);
      }
    });
    this.plane.addEventListener("pointercancel", function () { self.touch = null; self.pressed = false; });
    this.activate.addEventListener("click", function () { self.setExploring(!self.exploring); });
    this.sampleButton.addEventListener("click", function () { self.drawSamples(); });
    this.classButtons.forEach(function (button) {
      button.addEventListener("click", function () { self.setLabel(+button.getAttribute("data-label")); });
    });
    this.walkButton.addEventListener("click", function () { self.setWalking(!self.walking); });
    this.pickButton.addEventListener("click", function () { self.setPicking(!self.picking); });
    this.plane.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && self.walking) {  // the keyboard's point: one end of the walk
        self.addWalkEnd(self.z);
        event.preventDefault();
        return;
      }
      if (event.key === "Enter" && self.picking) {  // the test dot nearest the keyboard's point
        self.pickNearest(self.z);
        event.preventDefault();
        return;
      }
      var step = event.shiftKey ? 0.5 : 0.1;
      var moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      var move = moves[event.key];
      if (!move) return;
      var z = self.z.slice();
      z[0] = self.clamp(z[0] + move[0]);
      z[1] = self.clamp(z[1] + move[1]);
      self.setZ(z);
      event.preventDefault();
    });
    if (this.slider) {
      this.slider.addEventListener("input", function () {
        var z = self.z.slice();
        z[2] = parseFloat(self.slider.value);
        self.setZ(z, true);
      });
    }
    if (window.ResizeObserver) {
      new ResizeObserver(function () { self.resize(); }).observe(this.plane);
    } else {
      window.addEventListener("resize", function () { self.resize(); });
    }
    this.resize();
  }

  // The decoder of this explorer at z: for a conditional model, the digit `label` (by default the chosen one).
  Explorer.prototype.decode = function (z, label) {
    return decode(this.name, z, this.classes ? (label === undefined ? this.label : label) : undefined);
  };

  // "a 7", "an 8": the digit as the text names it.
  function aDigit(label) {
    return (label === 8 ? "an " : "a ") + label;
  }

  // A conditional model: draw the digit `label` from now on. The current point and the strip are decoded
  // again at once, at the same codes; the points of that class stand out on the plane.
  Explorer.prototype.setLabel = function (label) {
    if (!this.classes) throw new Error("model " + this.name + " has no classes");
    this.label = label;
    this.classButtons.forEach(function (button) {
      button.setAttribute("aria-pressed", +button.getAttribute("data-label") === label ? "true" : "false");
    });
    this.sampleButton.textContent = "Draw new " + label + "s from the prior";
    this.drawPoints();
    if (this.stripKind) {
      this.showStrip(this.stripZ, this.stripKind);
      this.stripStatus.textContent = "The same " + this.stripZ.length + " codes, now decoded as " + label + "s.";
    }
    this.setZ(this.z);
  };

  Explorer.prototype.setExploring = function (on) {
    this.exploring = on;
    this.root.classList.toggle("exploring", on);
    this.activate.textContent = on ? "Done exploring" : "Tap to explore";
    this.activate.setAttribute("aria-pressed", on ? "true" : "false");
  };

  // A standard normal number (Box–Muller).
  function gaussian() {
    var u = 1 - Math.random(), v = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  // Fresh prior samples z = L ε (L = I for N(0, I)), kept inside the explorer's domain, decoded into the strip.
  Explorer.prototype.drawSamples = function () {
    var zs = [], L = this.model.prior_covariance ? this.cholesky : null, sliceExtent = this.model.view.slice_extent;
    for (var s = 0; s < this.stripCount; s++) {
      var e = [];
      for (var d = 0; d < this.dim; d++) e.push(gaussian());
      var z = e.slice();
      if (L) { z[0] = L[0][0] * e[0]; z[1] = L[1][0] * e[0] + L[1][1] * e[1]; }
      z[0] = this.clamp(z[0]); z[1] = this.clamp(z[1]);
      if (this.dim >= 3) z[2] = Math.max(-sliceExtent, Math.min(sliceExtent, z[2]));
      zs.push(z);
    }
    this.setWalking(false);
    this.showStrip(zs, "samples");
    this.stripStatus.textContent = this.stripCount + (this.classes ? " new " + this.label + "s" : " new digits") +
      " decoded from codes drawn from the prior" + (L ? " N(0, \u03a3), z = L\u03b5" : " N(0, I)") +
      ": the crosses on the plane mark their (z\u2080, z\u2081).";
  };

  Explorer.prototype.setPicking = function (on) {
    this.picking = on;
    this.pickButton.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) {
      if (this.walking) this.setWalking(false);
      this.stripStatus.textContent = "Click or tap near one of the ringed test dots, or press Enter on the plane: the nearest one is shown.";
    }
    this.drawPlane();
  };

  // Show the ringed test image nearest to z in (z0, z1) (in 3-D, weighing the distance to the slice too).
  Explorer.prototype.pickNearest = function (z) {
    var best = 0, bestDistance = Infinity, dim = this.dim;
    this.tests.forEach(function (test, t) {
      var distance = 0;
      for (var d = 0; d < dim; d++) distance += (test.z[d] - z[d]) * (test.z[d] - z[d]);
      if (distance < bestDistance) { bestDistance = distance; best = t; }
    });
    this.showPicked(best);
  };

  Explorer.prototype.showPicked = function (t) {
    var test = this.tests[t], self = this;
    this.picked = t;
    this.picking = false;
    this.pickButton.setAttribute("aria-pressed", "false");
    this.pickedPixels = this.decode(test.z, test.label);  // a conditional model: with the image's own label
    [[".explorer-test", function (i) { return test.pixels[i] / 255; }], [".explorer-rebuilt", function (i) { return self.pickedPixels[i]; }]]
      .forEach(function (pair) {
        var canvas = self.root.querySelector(pair[0]), context = canvas.getContext("2d"), image = context.createImageData(28, 28);
        for (var i = 0; i < 784; i++) {
          var gray = Math.round(255 * (1 - pair[1](i)));
          image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = gray;
          image.data[4 * i + 3] = 255;
        }
        context.putImageData(image, 0, 0);
      });
    this.pickedLoss = lossSplit(this.name, Array.from(test.pixels, function (v) { return v / 255; }), test.z, test.sigma,
                                this.classes ? test.label : undefined);
    this.root.querySelector(".explorer-picked-loss").textContent = lossText(this.pickedLoss);
    this.root.querySelector(".explorer-picked").hidden = false;
    var names = "\u2080\u2081\u2082\u2083";
    this.root.querySelector(".explorer-picked-text").textContent = "Test image " + (test.index + 1).toLocaleString("en") +
      ", a " + test.label + ": " + test.z.map(function (m, d) {
        return "\u03bc" + names[d] + " = " + formatNumber(m).trim() + ", \u03c3" + names[d] + " = " + test.sigma[d].toFixed(3);
      }).join("; ") + ". The red ellipse on the plane is its \u03bc \u00b1 2\u03c3." +
      (this.classes ? " Encoded and decoded with its own label, " + test.label + "." : "");
    this.stripStatus.textContent = "Picked test image " + (test.index + 1).toLocaleString("en") + ", a " + test.label +
      ": above, beside its reconstruction" + (this.classes ? " (decoded as " + aDigit(test.label) + ", its own label)." : ".");
    this.drawPlane();
  };

  Explorer.prototype.setWalking = function (on) {
    if (on && this.picking) this.setPicking(false);
    this.walking = on;
    this.walkEnds = [];
    this.walkButton.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) {
      this.stripStatus.textContent = "Choose the first end of the walk: click or tap the plane, or press Enter at the keyboard's point.";
    }
    this.drawPlane();
  };

  Explorer.prototype.addWalkEnd = function (z) {
    this.walkEnds.push(z.slice());
    if (this.walkEnds.length === 1) {
      this.stripStatus.textContent = "Now choose the other end of the walk.";
      this.drawPlane();
      return;
    }
    var a = this.walkEnds[0], b = this.walkEnds[1], zs = [], n = this.stripCount;
    for (var s = 0; s < n; s++) {
      var t = s / (n - 1);
      zs.push(a.map(function (value, d) { return (1 - t) * value + t * b[d]; }));
    }
    this.walking = false;
    this.walkButton.setAttribute("aria-pressed", "false");
    this.walkEnds = [];
    this.showStrip(zs, "walk");
    this.stripStatus.textContent = "The straight walk from (" + a.slice(0, 2).map(function (v) { return v.toFixed(2); }).join(", ") +
      ") to (" + b.slice(0, 2).map(function (v) { return v.toFixed(2); }).join(", ") + "), decoded at " + n +
      " evenly spaced points, both ends included" + (this.classes ? ", as " + this.label + "s." : ".");
  };

  // Decode the latent points zs into the strip, left to right, and mark them on the plane.
  Explorer.prototype.showStrip = function (zs, kind) {
    var self = this, context = this.strip.getContext("2d"), image = context.createImageData(28 * zs.length, 28);
    this.stripZ = zs.map(function (z) { return z.slice(); });
    this.stripKind = kind;
    this.stripLabel = this.label;
    this.stripPixels = zs.map(function (z) { return self.decode(z); });
    this.stripPixels.forEach(function (pixels, s) {
      for (var i = 0; i < 784; i++) {
        var at = 4 * ((i / 28 | 0) * 28 * zs.length + s * 28 + i % 28), gray = Math.round(255 * (1 - pixels[i]));
        image.data[at] = image.data[at + 1] = image.data[at + 2] = gray;
        image.data[at + 3] = 255;
      }
    });
    context.putImageData(image, 0, 0);
    this.strip.setAttribute("aria-label", kind === "walk" ? "digits decoded along the walk" : "digits decoded from prior samples");
    this.drawPlane();
  };

  // The median of each digit class's points: where its numeral is written on the plane.
  Explorer.prototype.classCenters = function () {
    var centers = [];
    for (var digit = 0; digit < 10; digit++) {
      var members = this.points.filter(function (point) { return point.label === digit; });
      if (!members.length) continue;
      var center = [];
      for (var d = 0; d < this.dim; d++) {
        var values = members.map(function (point) { return point.z[d]; }).sort(function (a, b) { return a - b; });
        center.push(values[Math.floor(values.length / 2)]);
      }
      centers.push({ label: digit, z: center });
    }
    return centers;
  };

  Explorer.prototype.clamp = function (value) {
    return Math.max(-this.extent, Math.min(this.extent, value));
  };

  // latent (z0, z1) ↔ canvas pixels (CSS pixels, from the canvas' top left)
  Explorer.prototype.toCanvas = function (z0, z1) {
    var size = this.cssSize;
    return [(z0 + this.extent) / (2 * this.extent) * size, (this.extent - z1) / (2 * this.extent) * size];
  };
  Explorer.prototype.toLatent = function (x, y) {
    var size = this.cssSize;
    return [this.clamp(x / size * 2 * this.extent - this.extent), this.clamp(this.extent - y / size * 2 * this.extent)];
  };

  Explorer.prototype.setFromEvent = function (event) {
    var rect = this.plane.getBoundingClientRect();
    var latent = this.toLatent(event.clientX - rect.left, event.clientY - rect.top);
    var z = this.z.slice();
    z[0] = latent[0];
    z[1] = latent[1];
    this.setZ(z);
  };

  Explorer.prototype.setZ = function (z, sliceChanged) {
    var self = this;
    this.z = z.slice();
    if (sliceChanged && this.slider) {
      if (this.slider.value !== String(z[2])) this.slider.value = z[2];
      this.sliceReadout.textContent = formatNumber(z[2]);
      this.drawPoints();
    }
    this.pixels = this.decode(this.z);
    this.drawDigit();
    this.drawPlane();
    this.readout.textContent = this.z.map(function (v, d) { return "z" + "\u2080\u2081\u2082\u2083"[d] + " = " + formatNumber(v); }).join("\n");
    this.digit.setAttribute("aria-label", this.describe());
    // Screen readers hear the description once the point rests, not at every pointer move.
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(function () { self.status.textContent = self.describe(); }, ANNOUNCE_AFTER_MS);
  };

  // The decoded digit in words: the classes of the test digits encoded nearest to z.
  Explorer.prototype.describe = function () {
    var z = this.z, dim = this.dim;
    var nearest = this.points.map(function (point) {
      var distance = 0;
      for (var d = 0; d < dim; d++) distance += (point.z[d] - z[d]) * (point.z[d] - z[d]);
      return { distance: distance, label: point.label };
    }).sort(function (a, b) { return a.distance - b.distance; }).slice(0, NEIGHBORS);
    var counts = {};
    nearest.forEach(function (point) { counts[point.label] = (counts[point.label] || 0) + 1; });
    var ranked = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a] || a - b; });
    var words = ranked.map(function (label) { return counts[label] + " " + (counts[label] === 1 ? "is a " : "are ") + label; });
    var at = "z = (" + z.map(function (v) { return v.toFixed(2); }).join(", ") + ")";
    if (this.classes) {  // the class is the chosen one; the neighbors share the point's style, not its class
      return "Decoded " + this.label + " at " + at + ", drawn in the style of the test digits encoded nearest to this " +
        "point, each with its own label: of those " + NEIGHBORS + ", " + words.join(", ") + ".";
    }
    return "Decoded digit at " + at + ". Of the " + NEIGHBORS + " test digits encoded nearest to this point, " +
      words.join(", ") + ".";
  };

  Explorer.prototype.resize = function () {
    var rect = this.plane.getBoundingClientRect();
    var size = Math.max(1, Math.round(rect.width));
    var ratio = window.devicePixelRatio || 1;
    if (size === this.cssSize && ratio === this.ratio) return;
    this.cssSize = size;
    this.ratio = ratio;
    this.plane.width = this.layer.width = Math.round(size * ratio);
    this.plane.height = this.layer.height = Math.round(size * ratio);
    this.drawPoints();
    this.drawPlane();
  };

  // The static layer: grid, axes, test encodings colored by digit, numerals at the class centers,
  // prior ellipses.
  Explorer.prototype.drawPoints = function () {
    if (!this.cssSize) return;
    var context = this.layer.getContext("2d"), size = this.cssSize, self = this;
    context.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, size, size);

    context.lineWidth = 1;
    context.font = "12px system-ui, sans-serif";
    context.fillStyle = "#5a6070";
    for (var tick = -Math.floor(this.extent); tick <= this.extent; tick++) {
      var at = this.toCanvas(tick, tick);
      context.strokeStyle = tick === 0 ? "#b8bcc6" : "#eceef2";
      context.beginPath();
      context.moveTo(at[0], 0); context.lineTo(at[0], size);
      context.moveTo(0, at[1]); context.lineTo(size, at[1]);
      context.stroke();
      if (Math.abs(tick) < this.extent) {
        context.textAlign = "center"; context.textBaseline = "bottom";
        context.fillText(String(tick).replace("-", "\u2212"), at[0], size - 3);
        if (tick !== 0) {
          context.textAlign = "left"; context.textBaseline = "middle";
          context.fillText(String(tick).replace("-", "\u2212"), 4, at[1]);
        }
      }
    }
    context.textAlign = "right"; context.textBaseline = "bottom";
    context.fillText("z\u2080 \u2192", size - 4, size - 18);
    context.textAlign = "left"; context.textBaseline = "top";
    context.fillText("\u2191 z\u2081", 22, 4);

    var slice = this.dim >= 3 ? this.z[2] : null, chosen = this.classes ? this.label : null;
    // One path per digit and opacity level (in 3-D, the closer to the slice, the more opaque),
    // filled at once: far fewer canvas calls than one per point. Faint levels first.
    var radius = size < 360 ? 1.5 : 2, LEVELS = 8, batches = {};
    this.points.forEach(function (point) {
      var level = LEVELS - 1;
      if (slice !== null) {
        var distance = (point.z[2] - slice) / 0.4;
        level = Math.round((LEVELS - 1) * Math.exp(-distance * distance));
      }
      if (chosen !== null && point.label !== chosen) level = 0;  // a conditional model: the chosen class on top
      var key = level * 10 + point.label;
      (batches[key] = batches[key] || []).push(point);
    });
    Object.keys(batches).map(Number).sort(function (a, b) { return a - b; }).forEach(function (key) {
      var level = Math.floor(key / 10);
      context.globalAlpha = chosen !== null ? (level ? 0.85 : 0.3) : slice === null ? 0.55 : 0.05 + 0.75 * level / (LEVELS - 1);
      context.fillStyle = DIGIT_COLORS[key % 10];
      context.beginPath();
      batches[key].forEach(function (point) {
        var xy = self.toCanvas(point.z[0], point.z[1]);
        context.moveTo(xy[0] + radius, xy[1]);
        context.arc(xy[0], xy[1], radius, 0, 2 * Math.PI);
      });
      context.fill();
    });
    context.globalAlpha = 1;

    // Each class's numeral at its center, so that classes read without color (not for a conditional model,
    // whose classes share one cloud: their numerals would sit on top of each other at its center).
    context.font = "bold 16px system-ui, sans-serif";
    context.textAlign = "center"; context.textBaseline = "middle";
    context.lineWidth = 3; context.strokeStyle = "#ffffff"; context.fillStyle = "#111111";
    this.centers.forEach(function (center) {
      var xy = self.toCanvas(center.z[0], center.z[1]);
      context.strokeText(String(center.label), xy[0], xy[1]);
      context.fillText(String(center.label), xy[0], xy[1]);
    });

    {  // the prior's 1σ (solid) and 2σ (dashed) contours: Mahalanobis radius 1 and 2
      var L = this.cholesky;
      [1, 2].forEach(function (k) {
        context.beginPath();
        for (var step = 0; step <= 128; step++) {
          var t = step / 128 * 2 * Math.PI, e0 = k * Math.cos(t), e1 = k * Math.sin(t);
          var xy = self.toCanvas(L[0][0] * e0, L[1][0] * e0 + L[1][1] * e1);
          if (step === 0) context.moveTo(xy[0], xy[1]); else context.lineTo(xy[0], xy[1]);
        }
        context.setLineDash(k === 1 ? [] : [6, 4]);
        context.lineWidth = 2;
        context.strokeStyle = "#111111";
        context.stroke();
      });
      context.setLineDash([]);
    }
  };

  // The plane: the static layer plus a marker at the chosen z.
  Explorer.prototype.drawPlane = function () {
    if (!this.cssSize) return;
    var context = this.plane.getContext("2d");
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.drawImage(this.layer, 0, 0);
    context.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    var xy = this.toCanvas(this.z[0], this.z[1]);
    context.lineWidth = 2;
    context.strokeStyle = "#ffffff";
    context.beginPath(); context.arc(xy[0], xy[1], 7, 0, 2 * Math.PI); context.stroke();
    context.lineWidth = 1.5;
    context.strokeStyle = "#111111";
    context.beginPath(); context.arc(xy[0], xy[1], 7, 0, 2 * Math.PI); context.stroke();
    this.drawStripMarks(context);
    context.lineWidth = 1.5;
    context.strokeStyle = "#111111";
    context.beginPath();
    context.moveTo(xy[0] - 11, xy[1]); context.lineTo(xy[0] - 4, xy[1]);
    context.moveTo(xy[0] + 4, xy[1]); context.lineTo(xy[0] + 11, xy[1]);
    context.moveTo(xy[0], xy[1] - 11); context.lineTo(xy[0], xy[1] - 4);
    context.moveTo(xy[0], xy[1] + 4); context.lineTo(xy[0], xy[1] + 11);
    context.stroke();
  };

  // The strip's points on the plane: a line for a walk, crosses for prior samples; a chosen first end.
  Explorer.prototype.drawStripMarks = function (context) {
    var self = this;
    context.lineWidth = 2;
    context.strokeStyle = "#d62728";
    if (this.stripKind === "walk") {
      var a = this.toCanvas(this.stripZ[0][0], this.stripZ[0][1]);
      var b = this.toCanvas(this.stripZ[this.stripZ.length - 1][0], this.stripZ[this.stripZ.length - 1][1]);
      context.beginPath(); context.moveTo(a[0], a[1]); context.lineTo(b[0], b[1]); context.stroke();
    }
    if (this.stripKind) {
      this.stripZ.forEach(function (z) {
        var xy = self.toCanvas(z[0], z[1]);
        context.beginPath();
        context.moveTo(xy[0] - 4, xy[1] - 4); context.lineTo(xy[0] + 4, xy[1] + 4);
        context.moveTo(xy[0] - 4, xy[1] + 4); context.lineTo(xy[0] + 4, xy[1] - 4);
        context.stroke();
      });
    }
    this.walkEnds.forEach(function (z) {
      var xy = self.toCanvas(z[0], z[1]);
      context.beginPath(); context.arc(xy[0], xy[1], 5, 0, 2 * Math.PI); context.stroke();
    });
    // The test dots that can be picked, ringed; the picked one's μ ± 2σ ellipse, filled, with a ring to find it.
    context.lineWidth = 1;
    context.strokeStyle = this.picking ? "#111111" : "#8a8f99";
    this.tests.forEach(function (test) {
      var xy = self.toCanvas(test.z[0], test.z[1]);
      context.beginPath(); context.arc(xy[0], xy[1], 3.5, 0, 2 * Math.PI); context.stroke();
    });
    var drawn = this.pad && this.pad.posterior;
    if (drawn) {  // the pad's digit: its μ ± 2σ ellipse in blue, ringed
      var at = this.toCanvas(drawn.mu[0], drawn.mu[1]), unit = this.cssSize / (2 * this.extent);
      context.fillStyle = context.strokeStyle = "#1f4fd1";
      context.beginPath();
      context.ellipse(at[0], at[1], Math.max(2 * drawn.sigma[0] * unit, 0.75), Math.max(2 * drawn.sigma[1] * unit, 0.75), 0, 0, 2 * Math.PI);
      context.fill();
      context.lineWidth = 2;
      context.beginPath(); context.arc(at[0], at[1], 12, 0, 2 * Math.PI); context.stroke();
      context.lineWidth = 1;
    }
    if (this.picked !== null) {
      var test = this.tests[this.picked], center = this.toCanvas(test.z[0], test.z[1]);
      var scale = this.cssSize / (2 * this.extent);
      context.fillStyle = "#d62728";
      context.beginPath();
      context.ellipse(center[0], center[1], Math.max(2 * test.sigma[0] * scale, 0.75), Math.max(2 * test.sigma[1] * scale, 0.75), 0, 0, 2 * Math.PI);
      context.fill();
      context.lineWidth = 2;
      context.strokeStyle = "#d62728";
      context.beginPath(); context.arc(center[0], center[1], 10, 0, 2 * Math.PI); context.stroke();
    }
  };

  // The digit, ink dark on white like the figures: gray = 255 (1 − p), rounded.
  Explorer.prototype.drawDigit = function () {
    var data = this.digitImage.data;
    for (var i = 0; i < 784; i++) {
      var gray = Math.round(255 * (1 - this.pixels[i]));
      data[4 * i] = data[4 * i + 1] = data[4 * i + 2] = gray;
      data[4 * i + 3] = 255;
    }
    this.digitContext.putImageData(this.digitImage, 0, 0);
  };

  function explorer(name) {
    var found = explorers[name];
    if (!found) throw new Error("no running explorer for model " + name);
    return found;
  }

  window.vaeExplorer = {
    // The models whose explorers have started (scrolled into view).
    models: function () { return Object.keys(explorers); },
    // What has run so far: {scripts: models whose data script was added, executed: models whose data have run,
    // started: explorers started, decodes: decoder forward passes}.
    stats: function () {
      return { scripts: stats.scripts.slice(), executed: Object.keys(window.VAE_MODELS || {}),
               encoders: Object.keys(window.VAE_ENCODERS || {}), started: stats.started.slice(), decodes: stats.decodes,
               encodes: stats.encodes };
    },
    // The decoder of `name` at latent point z (for a conditional model, as the digit `label`): an array of
    // 784 pixel probabilities (row-major 28×28).
    decode: function (name, z, label) { return Array.from(decode(name, z, label)); },
    // Decode z in the explorer (as a pointer would), and draw it.
    setZ: function (name, z) { var e = explorer(name); e.setZ(z, e.dim >= 3); return this.state(name); },
    // A conditional model's explorer: choose the digit drawn (as its button does).
    setLabel: function (name, label) { explorer(name).setLabel(label); return this.state(name); },
    // The explorer's last decoded point: z, the label it was decoded with (null without classes), the pixel
    // probabilities, the digit canvas' gray levels.
    state: function (name) {
      var e = explorer(name);
      var drawn = e.digitContext.getImageData(0, 0, 28, 28).data;
      var gray = [];
      for (var i = 0; i < 784; i++) gray.push(drawn[4 * i]);
      return { z: e.z.slice(), label: e.label, pixels: Array.from(e.pixels), drawn: gray, extent: e.extent, exploring: e.exploring,
               walking: e.walking, walkEnds: e.walkEnds.map(function (z) { return z.slice(); }), picking: e.picking };
    },
    // The picked test image: its test-set index, label, μ, σ, pixels (0..1), and its reconstruction decoded at μ
    // (the pixel probabilities, and the gray levels drawn); null when none is picked.
    picked: function (name) {
      var e = explorer(name);
      if (e.picked === null) return null;
      var test = e.tests[e.picked];
      var drawn = e.root.querySelector(".explorer-rebuilt").getContext("2d").getImageData(0, 0, 28, 28).data, gray = [];
      for (var i = 0; i < 784; i++) gray.push(drawn[4 * i]);
      return { index: test.index, label: test.label, z: test.z.slice(), sigma: test.sigma.slice(),
               pixels: Array.from(test.pixels, function (v) { return v / 255; }), reconstruction: Array.from(e.pickedPixels),
               drawn: gray, loss: e.pickedLoss, lossText: e.root.querySelector(".explorer-picked-loss").textContent };
    },
    // The drawing pad (2-D explorer): MNIST's preprocessing of strokes ([[[x, y], ...], ...] in 0..1) as 784 gray
    // levels; the int8 encoder on 784 gray levels ({mu, logVar}; its script must have loaded); the pad's state.
    preprocess: function (name, strokes) {
      var data = window.VAE_ENCODERS[name];
      return Array.from(mnistRaster(inkStrokes(strokes, data.raster, data.pen), data.raster));
    },
    encode: function (name, pixels) { return encode(name, pixels); },
    pad: function (name) {
      var pad = explorer(name).pad;
      return { strokes: pad.strokes.map(function (s) { return s.map(function (p) { return p.slice(); }); }),
               editing: pad.editing, cursor: pad.cursor.slice(), posterior: pad.posterior,
               result: pad.result.textContent, loaded: !!(window.VAE_ENCODERS || {})[name] };
    },
    // Show the t-th of the explorer's pickable test images (as a click near its ringed dot does); returns picked().
    pick: function (name, t) { explorer(name).showPicked(t); return this.picked(name); },
    // The test images an explorer can show: [{index, z, sigma}].
    pickable: function (name) {
      return explorer(name).tests.map(function (t) { return { index: t.index, z: t.z.slice(), sigma: t.sigma.slice() }; });
    },
    // The strip: its kind ("samples", "walk" or null), latent points, the label they were decoded with (null
    // without classes), pixel probabilities, and the gray levels drawn on its canvas (one array of 784 per digit).
    strip: function (name) {
      var e = explorer(name), n = e.stripZ.length;
      var data = e.strip.getContext("2d").getImageData(0, 0, e.strip.width, 28).data, drawn = [];
      for (var s = 0; s < n; s++) {
        var gray = [];
        for (var i = 0; i < 784; i++) gray.push(data[4 * ((i / 28 | 0) * e.strip.width + s * 28 + i % 28)]);
        drawn.push(gray);
      }
      return { kind: e.stripKind, z: e.stripZ.map(function (z) { return z.slice(); }), label: e.stripLabel,
               pixels: e.stripPixels.map(function (p) { return Array.from(p); }), drawn: drawn };
    },
    // Where latent (z0, z1) is on the plane canvas, in CSS pixels from its top left.
    toCanvas: function (name, z0, z1) { return explorer(name).toCanvas(z0, z1); },
    // The plane canvas' RGBA pixel at CSS position (x, y).
    planePixel: function (name, x, y) {
      var e = explorer(name);
      return Array.from(e.plane.getContext("2d").getImageData(Math.round(x * e.ratio), Math.round(y * e.ratio), 1, 1).data);
    }
  };

  function start(root) {
    var name = root.getAttribute("data-model");
    if (explorers[name] || stats.started.indexOf(name) >= 0) return;
    if (!MODELS[name]) {
      var note = document.createElement("p");
      note.className = "missing-input";
      note.textContent = "The explorer's data (" + root.getAttribute("data-script") + ") did not load.";
      root.insertBefore(note, root.firstChild);
      return;
    }
    stats.started.push(name);
    // Three short tasks rather than one long one: set up and draw the points; unpack the weights;
    // decode the first digit. Only then is the explorer listed by window.vaeExplorer.models().
    var started = new Explorer(root);
    setTimeout(function () {
      network(name);
      setTimeout(function () {
        started.setZ(started.z);
        explorers[name] = started;
        root.removeAttribute("aria-busy");
      }, 0);
    }, 0);
  }

  // Add the explorer's data script to the page (once), and start the explorer when it has run: <script src>,
  // not fetch, so that it works from file:// too.
  function load(root) {
    var name = root.getAttribute("data-model");
    if (stats.scripts.indexOf(name) >= 0 || explorers[name]) return;
    stats.scripts.push(name);
    var script = document.createElement("script");
    script.src = root.getAttribute("data-script");
    script.onload = script.onerror = function () {
      MODELS = window.VAE_MODELS || {};
      start(root);  // without the data, start says so in the explorer
    };
    document.body.appendChild(script);
  }

  // Before its data load, an explorer is laid out at its full size (its plane a square), so that nothing moves
  // when it starts; touching or focusing it loads it at once.
  function prepare(root) {
    root.querySelector(".explorer-live").hidden = false;
    root.setAttribute("aria-busy", "true");
    if (navigator.maxTouchPoints > 0) {  // a touch screen: swipes scroll the page until the reader taps to explore
      root.classList.add("touch");
      root.querySelector(".explorer-hint").textContent =
        "Tap the plane to decode that point and start exploring; then drag on it. Until you tap, a swipe scrolls the page.";
    }
    ["pointerdown", "focusin"].forEach(function (type) {
      root.addEventListener(type, function () { load(root); });
    });
  }

  // Run as the page is parsed (this script comes after every explorer): each explorer takes its full size now.
  var roots = Array.prototype.slice.call(document.querySelectorAll(".explorer[data-model]"));
  roots.forEach(prepare);
  // A folded explorer loads when its <details> opens (a click or Enter on the summary, or a link).
  roots.forEach(function (root) {
    var details = root.closest("details[data-explorer-script]");
    if (!details) return;
    details.addEventListener("toggle", function () { if (details.open) load(root); });
    if (details.open) load(root);
  });
  var unfolded = roots.filter(function (root) { return !root.closest("details[data-explorer-script]"); });
  if (!window.IntersectionObserver) {
    unfolded.forEach(load);
  } else {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); load(entry.target); }
      });
    }, { rootMargin: NEAR });
    unfolded.forEach(function (root) { observer.observe(root); });
  }
})();
