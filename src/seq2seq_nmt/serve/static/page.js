// The page: lists the models (GET models), sends the sentence (POST translate, attention on) and
// draws the attention of the best output as a table: a row per target piece, a column per source piece.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadModels() {
  const response = await fetch("models");
  const body = await response.json();
  for (const m of body.models) {
    const option = new Option(`${m.name} (${m.src_lang} → ${m.tgt_lang})`, m.name);
    $("model").add(option);
  }
  $("model").value = body.default;
}

function cell(tag, text, className) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

function drawHeatmap(source, target, weights) {
  const table = $("heatmap");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  head.append(cell("th", ""));
  for (const piece of source) head.append(cell("th", piece, "src"));
  const body = table.createTBody();
  target.forEach((piece, i) => {
    const row = body.insertRow();
    row.append(cell("th", piece, "tgt"));
    weights[i].forEach((w) => {
      const td = cell("td", "");
      td.style.backgroundColor = `rgba(30, 80, 200, ${w.toFixed(3)})`;
      td.title = w.toFixed(3);
      row.append(td);
    });
  });
}

async function translate(event) {
  event.preventDefault();
  showError("");
  $("submit").disabled = true;
  try {
    const response = await fetch("translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        text: $("text").value,
        model: $("model").value,
        beam_size: Number($("beam").value),
        attention: true,
      }),
    });
    const body = await response.json();
    if (!response.ok) {
      showError(body.error || response.statusText);
      return;
    }
    const t = body.translations[0];
    $("translation").textContent = t.text;
    $("score").textContent = t.hypotheses.length
      ? `score ${t.hypotheses[0].score.toFixed(3)} (log-probability ${t.hypotheses[0].log_prob.toFixed(3)})`
      : "";
    drawHeatmap(t.source_pieces, t.target_pieces, t.attention);
    $("result").hidden = false;
  } catch (e) {
    showError(String(e));
  } finally {
    $("submit").disabled = false;
  }
}

$("form").addEventListener("submit", translate);
loadModels().catch((e) => showError(String(e)));
