// Training, replayed: the posterior means of a fixed set of test images after every epoch, on the latent plane,
// beside the loss curve with the chosen epoch marked. An epoch slider and a play button move through the epochs.
// Its data, assets/explorer/timeline_<model>.js (window.VAE_TIMELINES), are added to the page only when the
// figure comes near the viewport. No libraries, no network. window.vaeTimeline exposes each one's state (tests).
(function () {
  "use strict";

  var DIGIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // Matplotlib's tab10
  var EPOCH_MS = 350;  // how long playing takes from one epoch to the next
  var timelines = {};

  // Little-endian int16 codes, (epochs, count, 2), times scale: latent units.
  function codes(data) {
    var binary = atob(data.z), view = new DataView(new ArrayBuffer(binary.length));
    for (var i = 0; i < binary.length; i++) view.setUint8(i, binary.charCodeAt(i));
    var values = new Float32Array(binary.length / 2);
    for (var j = 0; j < values.length; j++) values[j] = view.getInt16(2 * j, true) * data.scale;
    return values;
  }

  function Timeline(root, data) {
    this.root = root;
    this.data = data;
    this.z = codes(data);
    this.labels = data.labels;
    this.plane = root.querySelector(".timeline-plane");
    this.curve = root.querySelector(".timeline-curve");
    this.slider = root.querySelector(".timeline-epoch");
    this.value = root.querySelector(".timeline-epoch-value");
    this.play = root.querySelector(".timeline-play");
    this.readout = root.querySelector(".timeline-readout");
    this.position = data.epochs.length - 1;  // the index of the epoch shown; fractional while playing
    this.playing = false;
    var self = this;
    this.slider.addEventListener("input", function () { self.stop(); self.show(+self.slider.value); });
    this.play.addEventListener("click", function () { if (self.playing) self.stop(); else self.start(); });
    root.querySelector(".timeline-live").hidden = false;
    var wait = root.querySelector(".timeline-wait");
    if (wait) wait.hidden = true;
    this.show(this.position);
  }

  // The point of test image i at epoch index e, in latent units.
  Timeline.prototype.at = function (e, i) {
    var k = 2 * (e * this.data.count + i);
    return [this.z[k], this.z[k + 1]];
  };

  // Image i's point at the (possibly fractional) epoch index t: on the straight line between two epochs.
  Timeline.prototype.point = function (t, i) {
    var e = Math.floor(t), f = t - e;
    var a = this.at(e, i);
    if (f === 0 || e + 1 >= this.data.epochs.length) return a;
    var b = this.at(e + 1, i);
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])];
  };

  Timeline.prototype.toCanvas = function (z) {
    var size = this.plane.width, extent = this.data.extent;
    return [(z[0] + extent) / (2 * extent) * size, (extent - z[1]) / (2 * extent) * size];
  };

  Timeline.prototype.show = function (t) {
    this.position = Math.max(0, Math.min(t, this.data.epochs.length - 1));
    var index = Math.round(this.position);
    this.slider.value = index;
    var epoch = this.data.epochs[index];
    this.value.textContent = epoch;
    this.slider.setAttribute("aria-valuetext", "epoch " + epoch + " of " + this.data.epochs[this.data.epochs.length - 1]);
    this.drawPlane();
    this.drawCurve();
    if (index !== this.readIndex) {
      this.readIndex = index;
      this.readout.textContent = this.describe(index);
    }
  };

  Timeline.prototype.describe = function (index) {
    var losses = this.data.losses, epoch = this.data.epochs[index];
    var text = "Epoch " + epoch + " of " + this.data.epochs[this.data.epochs.length - 1];
    if (losses.val_loss) {
      text += ": test loss " + losses.val_loss[index].toFixed(2);
      if (losses.val_reconstruction && losses.val_kl)
        text += " = reconstruction " + losses.val_reconstruction[index].toFixed(2) + " + KL " + losses.val_kl[index].toFixed(2);
      text += " nats per image";
    }
    if (losses.loss) text += "; training loss " + losses.loss[index].toFixed(2);
    return text + ".";
  };

  Timeline.prototype.drawPlane = function () {
    var context = this.plane.getContext("2d"), size = this.plane.width, extent = this.data.extent;
    var unit = size / (2 * extent);
    context.fillStyle = "#fff";
    context.fillRect(0, 0, size, size);
    // Whole latent units, the axes darker; the prior's 1σ and 2σ circles, dashed.
    context.lineWidth = 1;
    for (var v = -Math.floor(extent); v <= extent; v++) {
      context.strokeStyle = v === 0 ? "#b9bfc9" : "#eceef2";
      var p = this.toCanvas([v, v]);
      context.beginPath(); context.moveTo(p[0], 0); context.lineTo(p[0], size); context.stroke();
      context.beginPath(); context.moveTo(0, p[1]); context.lineTo(size, p[1]); context.stroke();
    }
    var origin = this.toCanvas([0, 0]);
    context.strokeStyle = "#5b6270";
    context.setLineDash([5, 4]);
    [1, 2].forEach(function (r) {
      context.beginPath(); context.arc(origin[0], origin[1], r * unit, 0, 2 * Math.PI); context.stroke();
    });
    context.setLineDash([]);
    var dot = Math.max(2, size / 160);
    for (var i = 0; i < this.data.count; i++) {
      var q = this.toCanvas(this.point(this.position, i));
      context.fillStyle = DIGIT_COLORS[+this.labels[i] % 10];
      context.fillRect(q[0] - dot / 2, q[1] - dot / 2, dot, dot);
    }
    context.fillStyle = "#20242c";
    context.font = Math.round(size / 24) + "px system-ui, sans-serif";
    context.fillText("epoch " + this.data.epochs[Math.round(this.position)], 10, 8 + size / 24);
  };

  // The loss curve: training (solid) and test (dashed) loss per epoch; a dot and a line mark the shown epoch.
  Timeline.prototype.drawCurve = function () {
    var context = this.curve.getContext("2d"), width = this.curve.width, height = this.curve.height;
    var losses = this.data.losses, epochs = this.data.epochs;
    var series = [["loss", "training", []], ["val_loss", "test", [6, 4]]].filter(function (s) { return losses[s[0]]; });
    context.fillStyle = "#fff";
    context.fillRect(0, 0, width, height);
    if (!series.length) return;
    var all = [];
    series.forEach(function (s) { all = all.concat(losses[s[0]]); });
    var low = Math.min.apply(null, all), high = Math.max.apply(null, all), pad = (high - low) * 0.06 || 1;
    low -= pad; high += pad;
    var left = 58, right = width - 14, top = 14, bottom = height - 42;
    var first = epochs[0], last = epochs[epochs.length - 1];
    function x(epoch) { return left + (last === first ? 0 : (epoch - first) / (last - first)) * (right - left); }
    function y(value) { return bottom - (value - low) / (high - low) * (bottom - top); }
    this.curveX = x; this.curveY = y;
    context.strokeStyle = "#b9bfc9";
    context.lineWidth = 1;
    context.beginPath(); context.moveTo(left, top); context.lineTo(left, bottom); context.lineTo(right, bottom); context.stroke();
    context.fillStyle = "#5b6270";
    context.font = "15px system-ui, sans-serif";
    context.textAlign = "right";
    var step = Math.pow(10, Math.floor(Math.log10((high - low) / 2))), ticks = [];
    if ((high - low) / step > 6) step *= 5; else if ((high - low) / step > 3) step *= 2;
    for (var tick = Math.ceil(low / step) * step; tick <= high; tick += step) ticks.push(tick);
    ticks.forEach(function (tick) { context.fillText(tick.toFixed(0), left - 6, y(tick) + 4); });
    context.textAlign = "center";
    [first, Math.round((first + last) / 2), last].forEach(function (epoch) { context.fillText(epoch, x(epoch), bottom + 18); });
    context.fillText("epoch", (left + right) / 2, bottom + 36);
    context.save();
    context.translate(16, (top + bottom) / 2); context.rotate(-Math.PI / 2);
    context.fillText("nats per image", 0, 0);
    context.restore();
    series.forEach(function (s) {
      context.strokeStyle = "#20242c"; context.lineWidth = 2; context.setLineDash(s[2]);
      context.beginPath();
      losses[s[0]].forEach(function (value, k) { if (k) context.lineTo(x(epochs[k]), y(value)); else context.moveTo(x(epochs[k]), y(value)); });
      context.stroke();
    });
    context.setLineDash([]);
    context.textAlign = "right";
    context.fillStyle = "#20242c";
    series.forEach(function (s, k) {
      context.fillText(s[1] + (s[2].length ? " (dashed)" : " (solid)"), right, top + 16 + 18 * k);
    });
    // The marker: where the shown epoch is, between two epochs while playing.
    var e = Math.floor(this.position), f = this.position - e, key = series[series.length - 1][0];
    var next = Math.min(e + 1, epochs.length - 1);
    var mx = x(epochs[e] + f * (epochs[next] - epochs[e])), my = y(losses[key][e] + f * (losses[key][next] - losses[key][e]));
    context.strokeStyle = "#c2410c"; context.lineWidth = 1.5;
    context.beginPath(); context.moveTo(mx, top); context.lineTo(mx, bottom); context.stroke();
    context.fillStyle = "#c2410c";
    context.beginPath(); context.arc(mx, my, 6, 0, 2 * Math.PI); context.fill();
    this.marker = [mx, my];
  };

  Timeline.prototype.start = function () {
    var self = this, last = this.data.epochs.length - 1;
    if (this.position >= last) this.show(0);  // played to the end: play again from the first epoch
    this.playing = true;
    this.play.textContent = "Pause";
    this.play.setAttribute("aria-pressed", "true");
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var before = null, carried = 0;
    function frame(now) {
      if (!self.playing) return;
      if (before !== null) {
        var moved = (now - before) / EPOCH_MS;
        if (!reduced) self.show(self.position + moved);
        else if ((carried += moved) >= 1) { self.show(self.position + Math.floor(carried)); carried -= Math.floor(carried); }
      }
      before = now;
      if (self.position >= last) { self.stop(); return; }
      requestAnimationFrame(frame);
    }
    requestAnimationFrame(frame);
  };

  Timeline.prototype.stop = function () {
    this.playing = false;
    this.play.textContent = "Play";
    this.play.setAttribute("aria-pressed", "false");
    if (this.position !== Math.round(this.position)) this.show(Math.round(this.position));
  };

  function start(root) {
    var name = root.getAttribute("data-timeline");
    var data = (window.VAE_TIMELINES || {})[name];
    if (!data) {
      var note = document.createElement("p");
      note.className = "missing-input";
      note.textContent = "The timeline's data (" + root.getAttribute("data-timeline-script") + ") did not load.";
      root.insertBefore(note, root.firstChild);
      return;
    }
    timelines[name] = new Timeline(root, data);
  }

  // Add the data script to the page, once, and start the timeline when it has run.
  function load(root) {
    if (root.getAttribute("data-loading")) return;
    root.setAttribute("data-loading", "true");
    var script = document.createElement("script");
    script.src = root.getAttribute("data-timeline-script");
    script.onload = script.onerror = function () { start(root); };
    document.body.appendChild(script);
  }

  window.vaeTimeline = {
    models: function () { return Object.keys(timelines); },
    state: function (name) {
      var t = timelines[name];
      if (!t) return null;
      var index = Math.round(t.position), shown = [];
      for (var i = 0; i < 5; i++) shown.push(t.point(t.position, i));
      return { position: t.position, epoch: t.data.epochs[index], playing: t.playing, points: shown,
               marker: t.marker, pixel: t.toCanvas(shown[0]) };
    },
  };

  document.addEventListener("DOMContentLoaded", function () {
    var roots = Array.prototype.slice.call(document.querySelectorAll("figure[data-timeline]"));
    roots.forEach(function (root) {  // "loads when you scroll here": true only where this script runs
      var wait = root.querySelector(".timeline-wait");
      if (wait && !timelines[root.getAttribute("data-timeline")]) wait.hidden = false;
    });
    if (!window.IntersectionObserver) { roots.forEach(load); return; }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); load(entry.target); }
      });
    }, { rootMargin: "400px 0px" });
    roots.forEach(function (root) { observer.observe(root); });
  });
})();
