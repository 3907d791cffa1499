// corral web: the login page keeps the session's key where only this origin (this
// host AND port) can read it, then opens the list. The key never goes in a cookie:
// a browser sends the cookies of 127.0.0.1 to every port of it.
"use strict";

const meta = document.querySelector('meta[name="corral-key"]');
try {
  localStorage.setItem("corral-key", meta.content);
  meta.content = "";
  location.replace("/");
} catch (error) {
  document.getElementById("note").textContent = `cannot keep the session's key (${error}): allow this site's storage`;
}
