# Scenario files the benchmark scripts write, sourced by bench.sh and instr.sh so that the CPU-seconds of one
# and the instructions of the other are measured on the same requests.

# stream_scenario FILE USERS SECONDS STREAM TOKENS: a closed loop of chat completions, streamed (STREAM=true)
# or not, asking for TOKENS output tokens.
stream_scenario() {
  cat > "$1" <<TOML
name = "bench-stream"
description = "chat completions against the zero-delay mock"
[load]
users = $2
duration = "$3s"
[[user]]
name = "Chat"
  [[user.step]]
  name = "chat"
  post = "/v1/chat/completions"
  stream = $4
  json = { model = "m", messages = [{ role = "user", content = "hi" }], stream = $4, max_tokens = $5 }
TOML
}
