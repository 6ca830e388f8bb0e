// A shop page that embeds Parlant's chat widget, as a customer's site would.
// Query string: ?server=<tactful URL>&agentId=<agent id>&agentName=<shown name>
import Chatbox from "parlant-chat-react";
import "parlant-chat-react/style.css";
import { createRoot } from "react-dom/client";

const query = new URLSearchParams(window.location.search);

function onSessionCreated(sessionId) {
  // Read by the test driver, which checks the session's timeline over REST.
  document.body.dataset.sessionId = sessionId;
}

createRoot(document.getElementById("root")).render(
  <Chatbox
    server={query.get("server")}
    agentId={query.get("agentId")}
    // Given, so the widget never calls GET /agents/{id} (staff only in production mode).
    agentName={query.get("agentName")}
    float
    classNames={{ popupButton: "open-chat" }}
    onSessionCreated={onSessionCreated}
  />,
);
