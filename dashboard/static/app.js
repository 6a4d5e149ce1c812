"use strict";
(function () {
  const el = document.getElementById("app");
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onmessage = (ev) => { const m = JSON.parse(ev.data); el.textContent = m.type + " seq " + m.seq; };
    ws.onclose = () => setTimeout(connect, 1000);
  }
  connect();
})();
